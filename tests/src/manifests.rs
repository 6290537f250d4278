//! Validates every Istio manifest under `examples/istio/` against the CRDs
//! of the Istio release the project targets.

use crate::crd::{yaml_documents, Schemas};
use std::fs;
use std::path::{Path, PathBuf};

/// The CRD schemas: `$ISTIO_SCHEMAS`, else the copy kept in `tests/schemas/`
/// (Istio 1.30.3; see its SOURCE.md).
pub fn schema_dir() -> PathBuf {
    std::env::var_os("ISTIO_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/istio-1.30.3"))
}

/// Every YAML file under `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Validates one file; each problem as `file: document N (Kind name): field: message`.
pub fn validate_file(schemas: &Schemas, path: &Path) -> Vec<String> {
    let shown = path.display();
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("{shown}: {e}")],
    };
    let docs = match yaml_documents(&text) {
        Ok(d) => d,
        Err(e) => return vec![format!("{shown}: {e}")],
    };
    let mut problems = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let kind = doc["kind"].as_str().unwrap_or("?");
        let name = doc["metadata"]["name"].as_str().unwrap_or("?");
        for v in schemas.validate(doc) {
            let field = if v.field.is_empty() { String::new() } else { format!("{}: ", v.field) };
            problems.push(format!("{shown}: document {} ({kind} {name}): {field}{}", i + 1, v.message));
        }
    }
    problems
}
