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
        let bytes = principal.as_bytes();
        // One pass: refuse spaces and controls, and note where the first
        // four `/` are and how many there are.
        let (mut slashes, mut count) = ([0usize; 4], 0usize);
        for (i, &b) in bytes.iter().enumerate() {
            if b <= b' ' || b == 0x7f {
                return None;
            }
            if b == b'/' {
                if let Some(at) = slashes.get_mut(count) {
                    *at = i;
                }
                count += 1;
            }
        }
        // `is_control` also refuses the C1 controls of a non-ASCII ID.
        if !principal.is_ascii() && principal.chars().any(char::is_control) {
            return None;
        }
        let [td_end, ns_start, ns_end, sa_start] = slashes;
        if count == 0 || td_end == 0 {
            return None;
        }
        // `<td>/ns/<ns>/sa/<sa>`: exactly four `/`, both names non-empty.
        let segment = |from: usize, to: usize| bytes.get(from + 1..to);
        let istio = count == 4
            && segment(td_end, ns_start) == Some(b"ns")
            && ns_end > ns_start + 1
            && segment(ns_end, sa_start) == Some(b"sa")
            && sa_start + 1 < bytes.len();
        let namespace = if istio { principal.get(ns_start + 1..ns_end).map(str::to_string) } else { None };
        Some(Self { principal: principal.to_string(), namespace })
    }
}

/// The URI of the client certificate that the proxy `peer_uri` forwarded in
/// `x-forwarded-client-cert` (`values`: the header's lines in order, read as
/// one list). A proxy that appends (or sets) XFCC puts its element last, with
/// `By` = its own URI; elements a client wrote come before it, or name
/// someone else. If this Envoy appends XFCC itself (Istio's sidecars do), its
/// own element, describing the peer, comes last and is skipped.
pub fn forwarded_uri(values: &[&str], peer_uri: &str) -> Option<String> {
    let joined = values.join(",");
    let mut elements = split_outside_quotes(&joined, ',').into_iter().rev().map(parse_element);
    let mut last = elements.next()??;
    if last.uri.as_deref() == Some(peer_uri) && last.by.as_deref() != Some(peer_uri) {
        last = elements.next()??;
    }
    if last.by.as_deref() != Some(peer_uri) {
        return None;
    }
    last.uri.filter(|u| !u.is_empty())
}

struct Element {
    by: Option<String>,
    uri: Option<String>,
}

/// One XFCC element's `By` and `URI`; None if either key repeats (a forged
/// element, refused whole).
fn parse_element(element: &str) -> Option<Element> {
    let mut e = Element { by: None, uri: None };
    for pair in split_outside_quotes(element, ';') {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "by" => &mut e.by,
            "uri" => &mut e.uri,
            _ => continue,
        };
        if slot.replace(unquote(value.trim())).is_some() {
            return None;
        }
    }
    Some(e)
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
        for not_istio in ["spiffe://td/ns/a/sa/b/extra", "spiffe://td/ns//sa/b", "spiffe://td/ns/a/sa/", "spiffe://td/ns/a/sa/b/", "spiffe://td/ns/a/x/sa/b", "spiffe://td/ns/a"] {
            assert_eq!(Identity::from_uri(not_istio).unwrap().namespace, None, "{not_istio}");
        }
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
    fn this_envoys_own_element_about_the_peer_is_skipped() {
        let chain = format!(
            "By={GATEWAY};URI=spiffe://cluster.local/ns/billing/sa/billing,By=spiffe://cluster.local/ns/payments/sa/payments;URI={GATEWAY}"
        );
        assert_eq!(forwarded_uri(&[&chain], GATEWAY).as_deref(), Some("spiffe://cluster.local/ns/billing/sa/billing"));
        // Only this Envoy's element: the gateway forwarded nothing.
        let ours = format!("By=spiffe://cluster.local/ns/payments/sa/payments;URI={GATEWAY}");
        assert_eq!(forwarded_uri(&[&ours], GATEWAY), None);
        // A client's forged element before ours, claiming to be by the gateway,
        // is still only accepted because the gateway is trusted to append: the
        // docs say so. One not claiming the gateway is refused.
        let forged = format!("By=spiffe://x/ns/x/sa/x;URI=spiffe://cluster.local/ns/billing/sa/billing,{ours}");
        assert_eq!(forwarded_uri(&[&forged], GATEWAY), None);
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
        assert_eq!(forwarded_uri(&[""], GATEWAY), None);
        assert_eq!(forwarded_uri(&[&format!("By={GATEWAY}")], GATEWAY), None);
    }
}
