//! Telling a shadow copy from the primary request.

/// The host part of an authority: `a-shadow:8080` → `a-shadow`,
/// `[::1]-shadow:80` → `[::1]-shadow`.
pub fn host_part(authority: &[u8]) -> &[u8] {
    let bracket_end = if authority.first() == Some(&b'[') { authority.iter().position(|&b| b == b']').unwrap_or(0) } else { 0 };
    match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if colon > bracket_end => authority.get(..colon).unwrap_or(authority),
        _ => authority,
    }
}

/// Envoy appends the suffix to the host part, before any port.
pub fn is_shadow_authority(authority: &[u8], suffix: &str) -> bool {
    let host = host_part(authority);
    host.len() >= suffix.len() && host.get(host.len() - suffix.len()..).is_some_and(|end| end.eq_ignore_ascii_case(suffix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_suffix_is_found_before_the_port() {
        assert!(is_shadow_authority(b"127.0.0.1-shadow:28080", "-shadow"));
        assert!(is_shadow_authority(b"productpage-shadow", "-shadow"));
        assert!(is_shadow_authority(b"Analysis.Example.com-SHADOW:443", "-shadow"));
        assert!(is_shadow_authority(b"[::1]-shadow:80", "-shadow"));
        assert!(!is_shadow_authority(b"127.0.0.1:28080", "-shadow"));
        assert!(!is_shadow_authority(b"shadow:80", "-shadow"));
        assert!(!is_shadow_authority(b"a:80-shadow", "-shadow"), "a suffix on the port is not Envoy's");
        assert!(!is_shadow_authority(b"[::1]", "-shadow"));
        assert!(!is_shadow_authority(b"", "-shadow"));
        assert_eq!(host_part(b"[::1]:80"), b"[::1]");
    }
}
