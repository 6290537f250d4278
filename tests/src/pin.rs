//! The `sha256` pins of the `examples/istio/` WasmPlugins. For an `oci://`
//! URL Istio's agent compares `sha256` with the digest of the image manifest
//! it pulled, so the pin is the digest of the compat image `make oci` builds
//! from the module; every change to a filter's code changes it.

use crate::envoy::wasm_module;
use crate::error::KitError;
use crate::oci::{Image, Variant};
use std::fs;
use std::path::{Path, PathBuf};

/// The filter an image URL names: `oci://host/path/header-router:0.1.0` → `header-router`.
pub fn filter_of_url(url: &str) -> Option<&str> {
    let last = url.rsplit('/').next()?;
    let name = last.split([':', '@']).next()?;
    (!name.is_empty()).then_some(name)
}

/// The pin of a filter's module as `make build` left it: the compat image's
/// manifest digest, without `sha256:`.
pub fn expected_pin(filter: &str) -> Result<String, KitError> {
    let path = wasm_module(&filter.replace('-', "_"))?;
    let module = fs::read(&path).map_err(KitError::io("reading a module"))?;
    let digest = Image::of_module(&module, Variant::Compat, filter)?.digest();
    Ok(digest.trim_start_matches("sha256:").to_string())
}

/// One WasmPlugin's pin in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub file: PathBuf,
    pub filter: String,
    pub found: Option<String>,
    pub want: String,
}

fn value_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim().trim_matches('"'))
}

/// Splits manifest text into its YAML documents' line ranges.
fn documents(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("---") {
            docs.push((start, i));
            start = i + 1;
        }
    }
    docs.push((start, lines.len()));
    docs
}

/// Rewrites the `sha256:` of each WasmPlugin in `text` to what `pin_of`
/// gives for its filter (adding it after `url:` when missing); returns the
/// new text and each pin as it was and should be.
pub fn rewrite(file: &Path, text: &str, pin_of: &dyn Fn(&str) -> Result<String, KitError>) -> Result<(String, Vec<Pin>), KitError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut pins = Vec::new();
    let mut inserts = Vec::new();
    for (start, end) in documents(&lines) {
        let doc = lines.get(start..end).unwrap_or_default();
        if !doc.iter().any(|l| l.trim() == "kind: WasmPlugin") {
            continue;
        }
        let Some((url_at, url)) = doc.iter().enumerate().find_map(|(i, l)| value_of(l, "url").map(|v| (i, v))) else {
            continue;
        };
        let filter = filter_of_url(url).ok_or_else(|| KitError::Protocol(format!("{}: no image name in {url}", file.display())))?;
        let want = pin_of(filter)?;
        let found = doc.iter().enumerate().find_map(|(i, l)| value_of(l, "sha256").map(|v| (i, v.to_string())));
        let indent: String = doc.get(url_at).map(|l| l.chars().take_while(|c| *c == ' ').collect()).unwrap_or_default();
        let line = format!("{indent}sha256: {want}");
        match &found {
            Some((i, _)) => {
                if let Some(slot) = out.get_mut(start + i) {
                    *slot = line;
                }
            }
            None => inserts.push((start + url_at + 1, line)),
        }
        pins.push(Pin { file: file.to_path_buf(), filter: filter.to_string(), found: found.map(|(_, v)| v), want });
    }
    for (at, line) in inserts.into_iter().rev() {
        out.insert(at, line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok((text, pins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_rewritten_or_added_after_the_url() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nkind: WasmPlugin\nspec:\n  url: oci://r/p/header-router:0.1.0\n  sha256: old\n---\nkind: WasmPlugin\nspec:\n  url: oci://r/p/retry-hints:0.1.0\n  phase: AUTHZ\n";
        let (new, pins) = rewrite(Path::new("f.yaml"), text, &|f| Ok(format!("pin-of-{f}"))).unwrap();
        assert_eq!(
            new,
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\nkind: WasmPlugin\nspec:\n  url: oci://r/p/header-router:0.1.0\n  sha256: pin-of-header-router\n---\nkind: WasmPlugin\nspec:\n  url: oci://r/p/retry-hints:0.1.0\n  sha256: pin-of-retry-hints\n  phase: AUTHZ\n"
        );
        assert_eq!(pins.iter().map(|p| p.found.clone()).collect::<Vec<_>>(), [Some("old".to_string()), None]);
    }

    #[test]
    fn the_filter_is_the_last_path_segment() {
        assert_eq!(filter_of_url("oci://registry.example.com/mesh-filters/header-router:0.1.0"), Some("header-router"));
        assert_eq!(filter_of_url("oci://r/x@sha256:ab"), Some("x"));
    }
}
