//! Every example a user may copy is checked: Envoy configs with the real
//! `envoy --mode validate`, Istio manifests against the CRD schemas.

use e2e::crd::Schemas;
use e2e::manifests::{schema_dir, validate_file, yaml_files};
use e2e::workspace_root;
use std::process::Command;

#[test]
fn every_envoy_example_passes_envoy_validate() {
    let envoy = e2e::envoy::envoy_binary().unwrap();
    let root = workspace_root();
    let files = yaml_files(&root.join("examples/envoy"));
    assert!(!files.is_empty(), "no Envoy examples found");
    // The mTLS example reads the demo's certificates.
    e2e::tls::DemoCerts::write(&root).unwrap();
    let mut failures = Vec::new();
    for file in &files {
        // Examples name modules relative to the repository root, where users run them.
        let out = Command::new(&envoy)
            .current_dir(&root)
            // Validation starts the Wasm VMs: a filter whose key comes from
            // Envoy's environment (host_env_keys) needs one to start.
            .env("MIRROR_SANITIZER_HASH_KEY", "validate-only-key-0123456789")
            .args(["--mode", "validate", "--use-dynamic-base-id", "-l", "error", "-c"])
            .arg(file)
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "{}: {}\n{}{}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn envoy_validate_catches_a_broken_example() {
    let envoy = e2e::envoy::envoy_binary().unwrap();
    let dir = std::env::temp_dir().join(format!("e2e-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "static_resources:\n  clusters:\n  - name: c\n    type: NOT_A_TYPE\n").unwrap();
    let out = Command::new(&envoy).args(["--mode", "validate", "--use-dynamic-base-id", "-c"]).arg(&bad).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
}

#[test]
fn every_istio_example_matches_the_crd_schemas() {
    let schemas = Schemas::load_dir(&schema_dir()).unwrap();
    let files = yaml_files(&workspace_root().join("examples/istio"));
    assert!(!files.is_empty(), "no Istio examples found");
    let problems: Vec<String> = files.iter().flat_map(|f| validate_file(&schemas, f)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_bad_manifest_names_file_document_and_field() {
    let schemas = Schemas::load_dir(&schema_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("e2e-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    let text = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: ok}\nspec: {url: oci://a/b}\n---\n\
                apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: broken}\nspec:\n  url: ftp://a/b.wasm\n  phaze: AUTHN\n";
    std::fs::write(&file, text).unwrap();
    let problems = validate_file(&schemas, &file);
    std::fs::remove_dir_all(&dir).unwrap();
    let shown = file.display().to_string();
    assert_eq!(
        problems,
        vec![
            format!("{shown}: document 2 (WasmPlugin broken): spec.phaze: unknown field"),
            format!("{shown}: document 2 (WasmPlugin broken): spec.url: scheme \"ftp\" is not one of oci://, file://, http://, https://"),
        ]
    );
}
