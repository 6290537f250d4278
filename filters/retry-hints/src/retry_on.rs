//! Istio's `retryOn`: a comma-separated list mixing Envoy's HTTP retry
//! conditions, its gRPC ones and bare status codes. Envoy takes them in three
//! different headers and refuses (400 under `strict_check_headers`) a status
//! code or a gRPC word in `x-envoy-retry-on`, so they are sorted here.

/// Conditions Envoy 1.40 accepts in `x-envoy-retry-on` (checked with
/// `strict_check_headers` by the end-to-end tests).
pub const HTTP_CONDITIONS: [&str; 11] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];

/// Conditions Envoy 1.40 accepts in `x-envoy-retry-grpc-on`.
pub const GRPC_CONDITIONS: [&str; 5] = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"];

/// Istio's default when `retryOn` is not given.
pub const ISTIO_DEFAULT: &str = "connect-failure,refused-stream,unavailable,cancelled,503";

/// `retryOn` sorted by the header each part goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub http: Vec<&'static str>,
    pub grpc: Vec<&'static str>,
    pub status_codes: Vec<u16>,
}

impl RetryOn {
    /// Reads `retryOn`; the error names the part that is not a condition.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!("{text:?} has an empty condition"));
            }
            if let Some(word) = HTTP_CONDITIONS.iter().find(|w| **w == part) {
                push_once(&mut out.http, *word);
            } else if let Some(word) = GRPC_CONDITIONS.iter().find(|w| **w == part) {
                push_once(&mut out.grpc, *word);
            } else if part.bytes().all(|b| b.is_ascii_digit()) {
                let code = part.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
                let code = code.ok_or_else(|| format!("{part:?} is not an HTTP status code"))?;
                push_once(&mut out.status_codes, code);
            } else {
                return Err(format!(
                    "unknown retry condition {part:?} (Envoy knows {} and gRPC {}, or a status code)",
                    HTTP_CONDITIONS.join(", "),
                    GRPC_CONDITIONS.join(", ")
                ));
            }
        }
        Ok(out)
    }
}

fn push_once<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_users_conditions() {
        let r = RetryOn::parse("5xx,connect-failure,refused-stream").unwrap();
        assert_eq!(r.http, ["5xx", "connect-failure", "refused-stream"]);
        assert!(r.grpc.is_empty() && r.status_codes.is_empty());
    }

    #[test]
    fn mixed_words_and_codes_are_sorted_by_header() {
        let r = RetryOn::parse("gateway-error, 503 ,unavailable,429,cancelled,503").unwrap();
        assert_eq!(r.http, ["gateway-error"]);
        assert_eq!(r.grpc, ["unavailable", "cancelled"]);
        assert_eq!(r.status_codes, [503, 429], "deduplicated");
        let d = RetryOn::parse(ISTIO_DEFAULT).unwrap();
        assert_eq!((d.http.len(), d.grpc.len(), d.status_codes.as_slice()), (2, 2, &[503][..]));
    }

    #[test]
    fn unknown_words_and_codes_are_refused() {
        assert!(RetryOn::parse("5xx,retriable-5xx").unwrap_err().contains("unknown retry condition \"retriable-5xx\""));
        assert!(RetryOn::parse("5XX").is_err(), "Envoy's words are lower-case");
        assert!(RetryOn::parse("5xx,,reset").unwrap_err().contains("empty"));
        assert!(RetryOn::parse("").is_err());
        assert!(RetryOn::parse("99").unwrap_err().contains("not an HTTP status code"));
        assert!(RetryOn::parse("600").is_err());
        assert!(RetryOn::parse("99999999999").is_err());
    }
}
