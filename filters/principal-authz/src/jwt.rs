//! The verified JWT payload Envoy's JWT filter leaves in the dynamic
//! metadata (`payload_in_metadata`), as `get_property` hands it over: a map
//! in proxy-wasm's pair encoding whose values are strings as raw bytes, maps
//! and lists in the same encoding (a list as keys with empty values), and
//! numbers or booleans as binary. Claims Istio can match are strings and
//! lists of strings; anything else matches no value.

use filter_common::codec::{decode_pairs, HeaderPairs};

/// A verified token's payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token {
    claims: HeaderPairs,
}

impl Token {
    /// From the bytes of the payload property; None if they are not a map.
    pub fn from_property(bytes: &[u8]) -> Option<Self> {
        decode_pairs(bytes).ok().map(|claims| Self { claims })
    }

    fn claim(&self, name: &str) -> Option<&[u8]> {
        self.claims.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    /// Istio's request principal: `<iss>/<sub>`; None unless both are strings.
    pub fn principal(&self) -> Option<String> {
        let iss = string(self.claim("iss")?)?;
        let sub = string(self.claim("sub")?)?;
        Some(format!("{iss}/{sub}"))
    }

    /// The string values of the claim at `path` (`["groups"]`,
    /// `["realm", "roles"]`): one for a string, each element of a list.
    pub fn claim_values(&self, path: &[String]) -> Vec<String> {
        let Some((first, rest)) = path.split_first() else { return Vec::new() };
        let Some(mut value) = self.claim(first).map(<[u8]>::to_vec) else { return Vec::new() };
        for key in rest {
            let Some(inner) = decode_pairs(&value).ok().and_then(|map| map.into_iter().find(|(k, _)| k == key)) else {
                return Vec::new();
            };
            value = inner.1;
        }
        strings(&value)
    }
}

/// A string claim arrives as its bytes; binary values (the pair encoding's
/// counts, numbers) hold NULs or control characters no JSON string claim
/// Istio matches would.
fn string(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.chars().any(char::is_control)).then(|| text.to_string())
}

fn strings(bytes: &[u8]) -> Vec<String> {
    if let Some(s) = string(bytes) {
        return vec![s];
    }
    match decode_pairs(bytes) {
        // A list: its elements are the keys, the values empty.
        Ok(pairs) if pairs.iter().all(|(_, v)| v.is_empty()) => pairs.into_iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::codec::encode_pairs;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The bytes Envoy 1.40 returned for `{"iss": "https://issuer.example",
    /// "sub": "user-1", "aud": ["a1", "a2"], "nested": {"a": "b"}, "exp": 4e9}`.
    fn envoy_payload() -> Vec<u8> {
        let list = encode_pairs(&[("a1", ""), ("a2", "")]);
        let nested = encode_pairs(&[("a", "b")]);
        let exp = 4e9f64.to_le_bytes().to_vec();
        encode_pairs::<&[u8], Vec<u8>>(&[
            (b"iss", b"https://issuer.example".to_vec()),
            (b"nested", nested),
            (b"sub", b"user-1".to_vec()),
            (b"aud", list),
            (b"exp", exp),
        ])
    }

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_list_encoding_is_what_envoy_sends() {
        let hex: String = encode_pairs(&[("a1", ""), ("a2", "")]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "02000000020000000000000002000000000000006131000061320000");
    }

    #[test]
    fn principal_audiences_and_nested_claims() {
        let t = Token::from_property(&envoy_payload()).unwrap();
        assert_eq!(t.principal().as_deref(), Some("https://issuer.example/user-1"));
        assert_eq!(t.claim_values(&path(&["aud"])), vec!["a1", "a2"]);
        assert_eq!(t.claim_values(&path(&["sub"])), vec!["user-1"]);
        assert_eq!(t.claim_values(&path(&["nested", "a"])), vec!["b"]);
        assert!(t.claim_values(&path(&["nested"])).is_empty(), "a map is no string");
        assert!(t.claim_values(&path(&["exp"])).is_empty(), "a number is no string");
        assert!(t.claim_values(&path(&["missing"])).is_empty());
        assert!(t.claim_values(&path(&["sub", "x"])).is_empty());
    }

    #[test]
    fn no_principal_without_both_claims() {
        let t = Token::from_property(&encode_pairs(&[("iss", "i")])).unwrap();
        assert_eq!(t.principal(), None);
        assert_eq!(Token::from_property(b"not a map"), None);
    }
}
