//! The module out of a pulled Wasm image, by the rules of Istio's agent
//! (istio/istio `pkg/wasm/imagefetcher.go` and `cache.go`):
//! - a Docker schema 2 manifest: the last layer must be a Docker
//!   `tar.gzip` layer holding `plugin.wasm`;
//! - otherwise first the compat variant: the last layer must be an OCI
//!   `tar+gzip` layer, in which the first entry whose base name is
//!   `plugin.wasm` is the module;
//! - then the oci variant: exactly two layers, the module being the one of
//!   type `application/vnd.module.wasm.content.layer.v1+wasm`, raw;
//! - whatever came out must start with the Wasm magic number (8 bytes at least).

use crate::oci::{TAR_GZIP_LAYER_TYPE, WASM_LAYER_TYPE};
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use std::io::Read;

const DOCKER_MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LAYER_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const WASM_MAGIC: [u8; 4] = [0x00, 0x61, 0x73, 0x6d];

/// Extracts the module from an image: its manifest bytes, and a way to
/// fetch a blob by digest. The error says why Istio would refuse the image.
pub fn extract_module(manifest: &[u8], blob: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    let manifest: Value = serde_json::from_slice(manifest).map_err(|e| format!("could not parse the manifest: {e}"))?;
    let layers: Vec<&Value> = manifest["layers"].as_array().into_iter().flatten().collect();
    let module = if manifest["mediaType"] == DOCKER_MANIFEST_TYPE {
        plugin_from_last_layer(&layers, DOCKER_LAYER_TYPE, blob)
            .map_err(|e| format!("could not extract Wasm file from the image as Docker container {e}"))?
    } else {
        match plugin_from_last_layer(&layers, TAR_GZIP_LAYER_TYPE, blob) {
            Ok(module) => module,
            Err(compat) => module_from_artifact(&layers, blob).map_err(|oci| {
                format!("the given image is in invalid format as an OCI image: could not parse as compat variant: {compat}; could not parse as oci variant: {oci}")
            })?,
        }
    };
    if module.len() < 8 || module.get(..4) != Some(&WASM_MAGIC[..]) {
        return Err("fetched Wasm binary is invalid".into());
    }
    Ok(module)
}

fn media_type(layer: &Value) -> &str {
    layer["mediaType"].as_str().unwrap_or_default()
}

fn digest(layer: &Value) -> Result<&str, String> {
    layer["digest"].as_str().ok_or_else(|| "a layer without a digest".to_string())
}

/// The compat variant: `plugin.wasm` in the last layer, a tar.gz.
fn plugin_from_last_layer(layers: &[&Value], want: &str, blob: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    let last = layers.last().ok_or("number of layers must be greater than zero")?;
    if media_type(last) != want {
        return Err(format!("invalid media type {} (expect {want})", media_type(last)));
    }
    let compressed = blob(digest(last)?)?;
    let mut archive = tar::Archive::new(MultiGzDecoder::new(&compressed[..]));
    let entries = archive.entries().map_err(|e| format!("failed to parse layer as tar.gz: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("could not extract wasm binary: {e}"))?;
        let is_plugin = entry.path().map_err(|e| e.to_string())?.file_name().is_some_and(|n| n == "plugin.wasm");
        if is_plugin {
            let mut module = Vec::new();
            entry.read_to_end(&mut module).map_err(|e| format!("failed to read plugin.wasm: {e}"))?;
            return Ok(module);
        }
    }
    Err("plugin.wasm not found in the archive".into())
}

/// The oci variant: two layers, one of them the raw module.
fn module_from_artifact(layers: &[&Value], blob: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    if layers.len() != 2 {
        return Err(format!("number of layers must be 2 but got {}", layers.len()));
    }
    let layer = layers
        .iter()
        .find(|l| media_type(l) == WASM_LAYER_TYPE)
        .ok_or_else(|| format!("could not find the layer of type {WASM_LAYER_TYPE}"))?;
    blob(digest(layer)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{gzip, tar_of, Blob, Image, Variant, IMAGE_CONFIG_TYPE, WASM_CONFIG_TYPE};
    use std::collections::HashMap;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 the module";

    fn pull(image: &Image) -> Result<Vec<u8>, String> {
        let blobs: HashMap<String, Vec<u8>> = image.blobs.iter().map(|b| (b.digest(), b.bytes.clone())).collect();
        extract_module(&image.manifest.bytes, &mut |d| blobs.get(d).cloned().ok_or(format!("no blob {d}")))
    }

    fn config() -> Blob {
        Blob::new(IMAGE_CONFIG_TYPE, b"{}".to_vec())
    }

    #[test]
    fn both_variants_give_back_the_module() {
        for variant in Variant::ALL {
            assert_eq!(pull(&Image::of_module(MODULE, variant, "r").unwrap()).unwrap(), MODULE, "{variant:?}");
        }
    }

    #[test]
    fn compat_takes_plugin_wasm_by_base_name_from_the_last_layer() {
        let tar = tar_of(&[("README", b"x"), ("dir/plugin.wasm", MODULE)]).unwrap();
        let other = Blob::new(TAR_GZIP_LAYER_TYPE, gzip(&tar_of(&[("plugin.wasm", b"\0asm\x01\0\0\0 not me")]).unwrap()).unwrap());
        let last = Blob::new(TAR_GZIP_LAYER_TYPE, gzip(&tar).unwrap());
        assert_eq!(pull(&Image::assemble(config(), vec![(other, vec![]), (last, vec![])], &[])).unwrap(), MODULE);
    }

    #[test]
    fn images_istio_refuses_are_refused() {
        let tar_layer = |files: &[(&str, &[u8])]| Blob::new(TAR_GZIP_LAYER_TYPE, gzip(&tar_of(files).unwrap()).unwrap());
        let cases = [
            ("no plugin.wasm", Image::assemble(config(), vec![(tar_layer(&[("filter.wasm", MODULE)]), vec![])], &[]), "plugin.wasm not found"),
            ("no layers", Image::assemble(config(), vec![], &[]), "number of layers must be greater than zero"),
            (
                "uncompressed tar",
                Image::assemble(config(), vec![(Blob::new("application/vnd.oci.image.layer.v1.tar", tar_of(&[("plugin.wasm", MODULE)]).unwrap()), vec![])], &[]),
                "number of layers must be 2 but got 1",
            ),
            (
                "artifact with one layer",
                Image::assemble(config(), vec![(Blob::new(WASM_LAYER_TYPE, MODULE.to_vec()), vec![])], &[]),
                "number of layers must be 2 but got 1",
            ),
            (
                "artifact without the module type",
                Image::assemble(
                    config(),
                    vec![(Blob::new(WASM_CONFIG_TYPE, b"{}".to_vec()), vec![]), (Blob::new("application/wasm", MODULE.to_vec()), vec![])],
                    &[],
                ),
                "could not find the layer of type",
            ),
            ("not wasm", Image::assemble(config(), vec![(tar_layer(&[("plugin.wasm", b"#!/bin/sh\necho")]), vec![])], &[]), "invalid"),
        ];
        for (what, image, want) in cases {
            let err = pull(&image).unwrap_err();
            assert!(err.contains(want), "{what}: {err}");
        }
    }
}
