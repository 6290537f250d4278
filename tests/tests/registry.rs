//! The filters' images through a real OCI registry (the distribution
//! registry on loopback): both Wasm image variants pushed with skopeo, pulled
//! back as Istio's agent pulls them (manifest by tag and by digest, each
//! layer by digest), the module extracted by Istio's rules and compared with
//! the built module; an image Istio would refuse is refused; and an example
//! WasmPlugin goes from the registry, pinned by its `sha256`, to a running
//! Envoy over ECDS.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::ecds::{ecds_names, with_node, EcdsSource};
use e2e::envoy::ScratchDir;
use e2e::istio_translate::{http_filters, wasm_plugins, PhaseMarkers, ResourceNaming};
use e2e::oci::{gzip, tar_of, write_layout, Blob, Image, Variant, IMAGE_CONFIG_TYPE, TAR_GZIP_LAYER_TYPE};
use e2e::pin::filter_of_url;
use e2e::registry::Registry;
use e2e::{wasm_module, workspace_root, Bootstrap, Envoy, Request, Script, Upstream};
use std::fs;
use std::process::Command;

const FILTERS: [&str; 4] = ["header-router", "mirror-sanitizer", "principal-authz", "retry-hints"];
const TAG: &str = "0.1.0";

fn module_bytes(filter: &str) -> Vec<u8> {
    fs::read(wasm_module(&filter.replace('-', "_")).unwrap()).unwrap()
}

#[test]
fn both_variants_of_every_filter_round_trip_through_a_real_registry() {
    let registry = Registry::start().unwrap();
    let dir = ScratchDir::new().unwrap();
    for filter in FILTERS {
        let module = module_bytes(filter);
        let images: Vec<(String, Image)> =
            Variant::ALL.iter().map(|v| (v.tag(TAG), Image::of_module(&module, *v, filter).unwrap())).collect();
        let layout = dir.path().join(filter);
        write_layout(&layout, &images).unwrap();
        let repository = format!("mesh-filters/{filter}");
        for (tag, image) in &images {
            registry.push(&layout, tag, &repository).unwrap();
            let by_tag = registry.manifest(&repository, tag).unwrap();
            assert_eq!(by_tag.digest, image.digest(), "{filter}:{tag}: the registry serves the digest make oci printed");
            let by_digest = registry.manifest(&repository, &by_tag.digest).unwrap();
            assert_eq!(by_digest.bytes, by_tag.bytes);
            let pulled = registry.pull_wasm(&repository, &by_tag.digest, Some(by_tag.digest.trim_start_matches("sha256:"))).unwrap();
            assert!(pulled == module, "{filter}:{tag}: the pulled module differs from the built one");
        }
    }
}

#[test]
fn the_compat_layer_is_an_ordinary_tar_gz() {
    // What a generic tool (GNU tar) sees in the layer pulled back.
    let registry = Registry::start().unwrap();
    let dir = ScratchDir::new().unwrap();
    let image = Image::of_module(&module_bytes("header-router"), Variant::Compat, "header-router").unwrap();
    write_layout(dir.path(), &[(TAG.to_string(), image.clone())]).unwrap();
    registry.push(dir.path(), TAG, "mesh-filters/header-router").unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&registry.manifest("mesh-filters/header-router", TAG).unwrap().bytes).unwrap();
    let layer = registry.blob("mesh-filters/header-router", manifest["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let path = dir.path().join("layer.tar.gz");
    fs::write(&path, layer).unwrap();
    let out = Command::new("tar").arg("-tvzf").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = listing.split_whitespace().collect();
    assert_eq!((fields[0], fields[1], fields[3], fields[5]), ("-rw-r--r--", "0/0", "1970-01-01", "plugin.wasm"), "{listing}");
}

#[test]
fn images_that_istio_would_refuse_are_refused_after_a_real_pull() {
    let registry = Registry::start().unwrap();
    let dir = ScratchDir::new().unwrap();
    let module = module_bytes("retry-hints");
    let misnamed = Blob::new(TAR_GZIP_LAYER_TYPE, gzip(&tar_of(&[("filter.wasm", &module)]).unwrap()).unwrap());
    let config = Blob::new(IMAGE_CONFIG_TYPE, b"{}".to_vec());
    let image = Image::assemble(config, vec![(misnamed, vec![])], &[]);
    write_layout(dir.path(), &[("misnamed".to_string(), image)]).unwrap();
    registry.push(dir.path(), "misnamed", "mesh-filters/broken").unwrap();
    let err = registry.pull_wasm("mesh-filters/broken", "misnamed", None).unwrap_err().to_string();
    assert!(err.contains("plugin.wasm not found in the archive"), "{err}");

    // A good image whose pin does not match is refused before the layers.
    let good = Image::of_module(&module, Variant::Compat, "retry-hints").unwrap();
    write_layout(dir.path(), &[(TAG.to_string(), good)]).unwrap();
    registry.push(dir.path(), TAG, "mesh-filters/retry-hints").unwrap();
    let err = registry.pull_wasm("mesh-filters/retry-hints", TAG, Some(&"0".repeat(64))).unwrap_err().to_string();
    assert!(err.contains("which does not match"), "{err}");
}

#[test]
fn an_example_goes_from_the_registry_to_a_running_envoy() {
    let text = fs::read_to_string(workspace_root().join("examples/istio/header-router.yaml")).unwrap();
    let mut plugin = wasm_plugins(&text).unwrap().remove(0);
    let filter = filter_of_url(&plugin.url).unwrap().to_string();
    let image_tag = plugin.url.rsplit(':').next().unwrap().to_string();

    // `make oci` + `make publish REGISTRY=<this registry>/mesh-filters`.
    let registry = Registry::start().unwrap();
    let dir = ScratchDir::new().unwrap();
    let images: Vec<(String, Image)> =
        Variant::ALL.iter().map(|v| (v.tag(&image_tag), Image::of_module(&module_bytes(&filter), *v, &filter).unwrap())).collect();
    write_layout(dir.path(), &images).unwrap();
    let repository = format!("mesh-filters/{filter}");
    registry.push(dir.path(), &image_tag, &repository).unwrap();
    plugin.url = format!("oci://{}/{repository}:{image_tag}", registry.host());

    // The agent: pull by tag, check the example's pin, keep the module.
    let module = registry.pull_wasm(&repository, &image_tag, plugin.sha256.as_deref()).unwrap_or_else(|e| {
        panic!("{e}\nthe pin in examples/istio/header-router.yaml is not the image of the built module: run `make pin`")
    });
    let cached = dir.path().join("module.wasm");
    fs::write(&cached, module).unwrap();

    let upstream = Upstream::start(Script::ok("web")).unwrap();
    let ecds = EcdsSource::new().unwrap();
    ecds.publish(&[plugin.delivered(ResourceNaming::default(), Ok(&cached))]).unwrap();
    let mut bootstrap = Bootstrap::to_upstream(upstream.addr());
    bootstrap.native_filters = http_filters(&[plugin.clone()], &PhaseMarkers::default(), ResourceNaming::default(), &ecds.config_source());
    let envoy = Envoy::start_json(&with_node(bootstrap.to_json())).unwrap();
    assert_eq!(ecds_names(&envoy).unwrap(), vec![plugin.resource_name(ResourceNaming::default())]);
    assert_eq!(envoy.send(&Request::get("/").header("user-agent", "X Mobile")).unwrap().status, 200);
    assert_eq!(upstream.received()[0].header("x-route-destination"), Some("my-service-mobile"));
}

#[test]
fn every_example_pins_the_image_of_its_built_module() {
    let mut stale = Vec::new();
    for file in e2e::manifests::yaml_files(&workspace_root().join("examples/istio")) {
        let text = fs::read_to_string(&file).unwrap();
        let (_, pins) = e2e::pin::rewrite(&file, &text, &|filter| e2e::pin::expected_pin(filter)).unwrap();
        for p in pins.into_iter().filter(|p| p.found.as_deref() != Some(p.want.as_str())) {
            stale.push(format!("{}: {} has sha256 {:?}, the image of the built module is {}", p.file.display(), p.filter, p.found, p.want));
        }
    }
    assert!(stale.is_empty(), "{}\nthe module changed since the examples were pinned: run `make pin`", stale.join("\n"));
}
