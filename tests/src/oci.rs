//! Wasm modules as OCI images, in both variants of the Wasm image
//! specification that Istio's agent pulls, written as an OCI image layout:
//! - `compat`: an ordinary image whose one `tar+gzip` layer holds
//!   `plugin.wasm`, with the `module.wasm.image/variant=compat` annotation;
//! - `oci`: a Wasm artifact of two layers, the runtime config
//!   (`application/vnd.module.wasm.config.v1+json`) and the raw module
//!   (`application/vnd.module.wasm.content.layer.v1+wasm`).
//!
//! Reproducible: the same module gives the same digests anywhere, because
//! nothing varies but the module (fixed timestamps and owners in the tar
//! and the config, a gzip header without time or name, JSON with sorted keys).

use crate::error::KitError;
use flate2::{Compression, GzBuilder};
use ring::digest::{digest, SHA256};
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const IMAGE_CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const TAR_GZIP_LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const WASM_CONFIG_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
pub const WASM_LAYER_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The only time an image carries: the epoch, so a rebuild changes nothing.
const CREATED: &str = "1970-01-01T00:00:00Z";

/// The two variants of the Wasm image specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Compat,
    Oci,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Compat, Variant::Oci];

    pub fn name(self) -> &'static str {
        match self {
            Self::Compat => "compat",
            Self::Oci => "oci",
        }
    }

    /// The tag of this variant for a version: the compat image is the plain
    /// version (what Istio users point at), the artifact `<version>-oci`.
    pub fn tag(self, version: &str) -> String {
        match self {
            Self::Compat => version.to_string(),
            Self::Oci => format!("{version}-oci"),
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self { media_type: media_type.to_string(), bytes }
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    /// Its OCI descriptor, with annotations if any.
    pub fn descriptor(&self, annotations: &[(&str, &str)]) -> Value {
        let mut d = json!({ "mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len() });
        if !annotations.is_empty() {
            d["annotations"] = annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        }
        d
    }
}

/// JSON bytes: compact, keys sorted (serde_json's maps are ordered), so
/// equal values give equal digests.
pub fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// One image: its manifest and every blob the manifest names.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    pub blobs: Vec<Blob>,
}

impl Image {
    /// An image from a config and layers (descriptor annotations included).
    pub fn assemble(config: Blob, layers: Vec<(Blob, Vec<(&str, &str)>)>, annotations: &[(&str, &str)]) -> Self {
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config.descriptor(&[]),
            "layers": layers.iter().map(|(b, a)| b.descriptor(a)).collect::<Vec<_>>(),
        });
        if !annotations.is_empty() {
            manifest["annotations"] = annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        }
        let mut blobs = vec![config];
        blobs.extend(layers.into_iter().map(|(b, _)| b));
        Self { manifest: Blob::new(MANIFEST_TYPE, json_bytes(&manifest)), blobs }
    }

    /// The image of `module` in `variant`; `root_id` goes in the artifact's
    /// runtime config.
    pub fn of_module(module: &[u8], variant: Variant, root_id: &str) -> Result<Self, KitError> {
        match variant {
            Variant::Compat => {
                let tar = plugin_tar(module)?;
                let layer = Blob::new(TAR_GZIP_LAYER_TYPE, gzip(&tar)?);
                let config = json!({
                    "created": CREATED,
                    "architecture": "wasm",
                    "os": "wasip1",
                    "config": {},
                    "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&tar)] },
                    "history": [{ "created": CREATED, "created_by": "make oci" }],
                });
                let config = Blob::new(IMAGE_CONFIG_TYPE, json_bytes(&config));
                Ok(Self::assemble(config, vec![(layer, vec![])], &[(VARIANT_ANNOTATION, "compat")]))
            }
            Variant::Oci => {
                // Both the manifest config and the first layer: Istio reads the
                // module from the layers and wants exactly two of them.
                let runtime = json!({ "type": "envoy_proxy", "abiVersions": ["v0-0.2.1"], "config": { "root_ids": [root_id] } });
                let runtime = Blob::new(WASM_CONFIG_TYPE, json_bytes(&runtime));
                let module = Blob::new(WASM_LAYER_TYPE, module.to_vec());
                let layers = vec![
                    (runtime.clone(), vec![(TITLE_ANNOTATION, "runtime-config.json")]),
                    (module, vec![(TITLE_ANNOTATION, "plugin.wasm")]),
                ];
                Ok(Self::assemble(runtime, layers, &[]))
            }
        }
    }

    pub fn digest(&self) -> String {
        self.manifest.digest()
    }
}

/// A tar holding only `plugin.wasm`: owner root, mode 0644, time 0.
pub fn plugin_tar(module: &[u8]) -> Result<Vec<u8>, KitError> {
    tar_of(&[("plugin.wasm", module)])
}

/// A tar of the given files, in the given order, with fixed metadata.
pub fn tar_of(files: &[(&str, &[u8])]) -> Result<Vec<u8>, KitError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).map_err(KitError::io("naming a tar entry"))?;
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *bytes).map_err(KitError::io("writing a tar entry"))?;
    }
    builder.into_inner().map_err(KitError::io("finishing a tar"))
}

/// gzip with a fixed header: no name, time 0, OS "unknown", best compression.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>, KitError> {
    let mut encoder = GzBuilder::new().mtime(0).operating_system(255).write(Vec::new(), Compression::best());
    encoder.write_all(bytes).map_err(KitError::io("compressing a layer"))?;
    encoder.finish().map_err(KitError::io("compressing a layer"))
}

/// Writes an OCI image layout at `dir` holding `images` by tag (replacing
/// what was there), sorted by tag.
pub fn write_layout(dir: &Path, images: &[(String, Image)]) -> Result<(), KitError> {
    let _ = fs::remove_dir_all(dir);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(KitError::io("creating an image layout"))?;
    fs::write(dir.join("oci-layout"), json_bytes(&json!({ "imageLayoutVersion": "1.0.0" })))
        .map_err(KitError::io("writing oci-layout"))?;
    let mut sorted: Vec<&(String, Image)> = images.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut manifests = Vec::new();
    for (tag, image) in sorted {
        for blob in std::iter::once(&image.manifest).chain(&image.blobs) {
            let hex = blob.digest().trim_start_matches("sha256:").to_string();
            fs::write(blobs.join(hex), &blob.bytes).map_err(KitError::io("writing a blob"))?;
        }
        manifests.push(image.manifest.descriptor(&[(REF_NAME_ANNOTATION, tag)]));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
    fs::write(dir.join("index.json"), json_bytes(&index)).map_err(KitError::io("writing index.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 a module";

    #[test]
    fn the_same_module_gives_the_same_digests() {
        for variant in Variant::ALL {
            let a = Image::of_module(MODULE, variant, "r").unwrap();
            let b = Image::of_module(MODULE, variant, "r").unwrap();
            assert_eq!(a.digest(), b.digest());
            let c = Image::of_module(b"\0asm\x01\0\0\0 other", variant, "r").unwrap();
            assert_ne!(a.digest(), c.digest(), "{variant:?}");
        }
    }

    #[test]
    fn the_gzip_header_has_no_time_no_name_and_an_unknown_os() {
        let z = gzip(b"x").unwrap();
        assert_eq!(&z[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
    }

    #[test]
    fn the_tar_is_complete_with_fixed_metadata() {
        let t = plugin_tar(MODULE).unwrap();
        assert_eq!(t.len() % 512, 0);
        assert!(t.ends_with(&[0; 1024]), "two end-of-archive blocks");
        let mut archive = tar::Archive::new(&t[..]);
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        let header = entry.header();
        assert_eq!(
            (header.path().unwrap().to_str().unwrap(), header.mode().unwrap(), header.mtime().unwrap(), header.uid().unwrap()),
            ("plugin.wasm", 0o644, 0, 0)
        );
    }

    #[test]
    fn manifests_carry_what_each_variant_needs() {
        let compat: Value = serde_json::from_slice(&Image::of_module(MODULE, Variant::Compat, "r").unwrap().manifest.bytes).unwrap();
        assert_eq!(compat["annotations"][VARIANT_ANNOTATION], "compat");
        assert_eq!(compat["layers"][0]["mediaType"], TAR_GZIP_LAYER_TYPE);
        let oci: Value = serde_json::from_slice(&Image::of_module(MODULE, Variant::Oci, "r").unwrap().manifest.bytes).unwrap();
        assert_eq!(oci["config"]["mediaType"], WASM_CONFIG_TYPE);
        let types: Vec<&str> = oci["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
        assert_eq!(types, [WASM_CONFIG_TYPE, WASM_LAYER_TYPE]);
        assert_eq!(oci["layers"][1]["digest"], sha256_digest(MODULE));
    }
}
