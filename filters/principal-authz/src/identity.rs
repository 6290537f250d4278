//! The caller's identity: Istio's principal (`<trust-domain>/ns/<ns>/sa/<sa>`,
//! the peer's SPIFFE ID without `spiffe://`) and the namespace in it; and,
//! when configured, the identity a trusted proxy forwarded in
//! `x-forwarded-client-cert`.

/// An authenticated caller. A plaintext caller, or one whose certificate
/// carries no SPIFFE URI, has no `Identity` at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `cluster.local/ns/billing/sa/billing`.
    pub principal: String,
    /// `billing`; `None` when the ID is not in Istio's `/ns/<ns>/sa/<sa>` form.
    pub namespace: Option<String>,
}

impl Identity {
    /// From a certificate's URI SAN; only `spiffe://` IDs are identities.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let principal = uri.strip_prefix("spiffe://")?;
        let (trust_domain, path) = principal.split_once('/')?;
        if trust_domain.is_empty() || principal.chars().any(|c| c.is_control() || c == ' ') {
            return None;
        }
        let namespace = match path.split('/').collect::<Vec<_>>().as_slice() {
            ["ns", ns, "sa", sa] if !ns.is_empty() && !sa.is_empty() => Some((*ns).to_string()),
            _ => None,
        };
        Some(Self { principal: principal.to_string(), namespace })
    }
}

/// The URI of the client certificate that the proxy `peer_uri` forwarded: the
/// last `x-forwarded-client-cert` element, which a proxy appending or
/// setting XFCC writes, and only if its `By` is that proxy's own URI (an
/// element a client wrote names someone else, or no one). `values` are the
/// header's values in order; several header lines read as one list.
pub fn forwarded_uri(values: &[&str], peer_uri: &str) -> Option<String> {
    let joined = values.join(",");
    let last = split_outside_quotes(&joined, ',').into_iter().next_back()?;
    let mut by = None;
    let mut uri = None;
    for pair in split_outside_quotes(last, ';') {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let value = unquote(value.trim());
        match key.trim().to_ascii_lowercase().as_str() {
            "by" if by.is_none() => by = Some(value),
            "uri" if uri.is_none() => uri = Some(value),
            // A repeated key is a forged element: refuse it whole.
            "by" | "uri" => return None,
            _ => {}
        }
    }
    if by? != peer_uri {
        return None;
    }
    uri.filter(|u| !u.is_empty())
}

/// Splits on `sep` except inside double quotes (XFCC quotes values that
/// contain `,`, `;` or `=`, and escapes `"` inside them with `\`).
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\""),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn spiffe_ids_become_principals_with_their_namespace() {
        let id = Identity::from_uri("spiffe://cluster.local/ns/billing/sa/billing").unwrap();
        assert_eq!(id.principal, "cluster.local/ns/billing/sa/billing");
        assert_eq!(id.namespace.as_deref(), Some("billing"));
        let other = Identity::from_uri("spiffe://example.org/workload/x").unwrap();
        assert_eq!(other.principal, "example.org/workload/x");
        assert_eq!(other.namespace, None);
        assert_eq!(Identity::from_uri("spiffe://td/ns/a/sa/b/extra").unwrap().namespace, None);
    }

    #[test]
    fn other_uris_are_no_identity() {
        for uri in ["https://billing.example", "spiffe://", "spiffe:///ns/a/sa/b", "spiffe://td", "SPIFFE://td/ns/a/sa/b", ""] {
            assert_eq!(Identity::from_uri(uri), None, "{uri}");
        }
    }

    const GATEWAY: &str = "spiffe://cluster.local/ns/istio-system/sa/gateway";

    #[test]
    fn the_trusted_proxys_own_element_names_the_client() {
        let xfcc = format!("By={GATEWAY};Hash=abc;Subject=\"CN=a,O=b\";URI=spiffe://cluster.local/ns/billing/sa/billing");
        assert_eq!(forwarded_uri(&[&xfcc], GATEWAY).as_deref(), Some("spiffe://cluster.local/ns/billing/sa/billing"));
    }

    #[test]
    fn elements_written_by_others_are_ignored() {
        let client_forged = "By=spiffe://x/ns/y/sa/z;URI=spiffe://cluster.local/ns/billing/sa/billing";
        // The client's forged element comes first; the proxy appended its own.
        let appended = format!("{client_forged},By={GATEWAY};URI=spiffe://cluster.local/ns/shop/sa/shop");
        assert_eq!(forwarded_uri(&[&appended], GATEWAY).as_deref(), Some("spiffe://cluster.local/ns/shop/sa/shop"));
        // Only the forged element: its By is not the proxy.
        assert_eq!(forwarded_uri(&[client_forged], GATEWAY), None);
        // A second header line the client added after the proxy's one.
        let proxy = format!("By={GATEWAY};URI=spiffe://cluster.local/ns/shop/sa/shop");
        assert_eq!(forwarded_uri(&[&proxy, client_forged], GATEWAY), None);
        // Duplicate keys inside the last element.
        let twice = format!("By={GATEWAY};URI=spiffe://a/ns/a/sa/a;URI=spiffe://b/ns/b/sa/b");
        assert_eq!(forwarded_uri(&[&twice], GATEWAY), None);
        // A quoted comma does not start a new element.
        let quoted = format!("By={GATEWAY};Subject=\"CN=x,By={GATEWAY}\";URI=spiffe://c/ns/c/sa/c");
        assert_eq!(forwarded_uri(&[&quoted], GATEWAY).as_deref(), Some("spiffe://c/ns/c/sa/c"));
        assert_eq!(forwarded_uri(&[], GATEWAY), None);
        assert_eq!(forwarded_uri(&[&format!("By={GATEWAY}")], GATEWAY), None);
    }
}
