//! The request method must be an RFC 9110 token (`1*tchar`); anything else
//! (spaces, controls, `/`, non-ASCII, nothing at all) cannot be compared
//! with a rule safely and is refused.

/// `tchar` of RFC 9110 section 5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub fn is_token(method: &str) -> bool {
    !method.is_empty() && method.bytes().all(is_tchar)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn methods_are_tokens() {
        for m in ["GET", "delete", "M-SEARCH", "PROPFIND", "X!#$%&'*+-.^_`|~9"] {
            assert!(is_token(m), "{m}");
        }
        for m in ["", "GET ", " GET", "DE LETE", "GET\t", "GE\u{0}T", "DEL/ETE", "GET:", "DELETE\r\n", "D\u{c9}LETE", "(GET)", "G\"ET"] {
            assert!(!is_token(m), "{m:?}");
        }
    }
}
