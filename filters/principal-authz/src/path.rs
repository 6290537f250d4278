//! The path rules see, normalized as Istio's security guide recommends
//! (Envoy's `normalize_path` + `merge_slashes` + decoding escaped slashes):
//! no encoding, dot segment or doubled slash can make a path look different
//! to the rules than to the server behind the proxy. The filter then sends the
//! normalized path upstream, so both see the same thing.

use filter_common::codec::hex_value;
use std::fmt;

/// A request path split into what rules match on and what travels with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    /// Absolute, without query or fragment, no dot segments, no empty
    /// segments, unreserved escapes decoded, other escapes in upper case.
    pub path: String,
    /// The query as the client sent it (without `?`), if there was one.
    pub query: Option<String>,
}

impl NormalizedPath {
    /// The `:path` the upstream gets: the normalized path and the query.
    pub fn to_request_path(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Why a path cannot be normalized safely; such a request is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsafePath {
    /// Not origin-form (`/…`): `*`, an absolute URL or nothing at all.
    NotAbsolute,
    /// `%00`: servers written in C end the path there.
    EncodedNul,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A control character, space, or a byte outside ASCII.
    BadByte(u8),
    /// `;` path parameters: Tomcat, Jetty and Spring strip them before
    /// routing (`/public/..;/admin` reaches `/admin`), so the rules and the
    /// server would see different paths.
    PathParameter,
}

impl fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsolute => f.write_str("the path does not start with /"),
            Self::EncodedNul => f.write_str("the path contains %00"),
            Self::BadEscape => f.write_str("the path contains a % not followed by two hex digits"),
            Self::BadByte(b) => write!(f, "the path contains the byte 0x{b:02x}"),
            Self::PathParameter => f.write_str("the path contains a ; path parameter"),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalizes a request's `:path`:
/// 1. the fragment (`#…`) is dropped and the query (`?…`) set aside;
/// 2. `%XX` escapes of unreserved characters are decoded, `%2F` and `%5C`
///    become `/`, other escapes are kept with upper-case hex; `%00`, bad
///    escapes, controls, spaces, non-ASCII bytes and `;` make it unsafe;
/// 3. a backslash is a slash (as browsers and many servers read it);
/// 4. empty segments are merged and `.` / `..` removed (RFC 3986 5.2.4,
///    never above the root); a trailing slash stays.
pub fn normalize(raw: &str) -> Result<NormalizedPath, UnsafePath> {
    let without_fragment = raw.split_once('#').map_or(raw, |(before, _)| before);
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (without_fragment, None),
    };
    if !path.starts_with('/') {
        return Err(UnsafePath::NotAbsolute);
    }
    // Segments with their text decoded; `/` and `\` (raw or escaped) split.
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut trailing_slash = false;
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        let ch = match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (bytes.get(i).copied().and_then(hex_value), bytes.get(i + 1).copied().and_then(hex_value))
                else {
                    return Err(UnsafePath::BadEscape);
                };
                i += 2;
                let decoded = hi << 4 | lo;
                match decoded {
                    0 => return Err(UnsafePath::EncodedNul),
                    b'/' | b'\\' => None,
                    d if is_unreserved(d) => Some(Segment::Char(char::from(d))),
                    d => Some(Segment::Escape(d)),
                }
            }
            b'/' | b'\\' => None,
            b';' => return Err(UnsafePath::PathParameter),
            0x21..=0x7e => Some(Segment::Char(char::from(b))),
            other => return Err(UnsafePath::BadByte(other)),
        };
        match ch {
            None => {
                push_segment(&mut segments, &mut current, &mut trailing_slash);
                trailing_slash = true;
            }
            Some(Segment::Char(c)) => {
                current.push(c);
                trailing_slash = false;
            }
            Some(Segment::Escape(d)) => {
                current.push_str(&format!("%{d:02X}"));
                trailing_slash = false;
            }
        }
    }
    push_segment(&mut segments, &mut current, &mut trailing_slash);
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(NormalizedPath { path: out, query })
}

enum Segment {
    Char(char),
    Escape(u8),
}

/// Ends the segment being read: empty ones merge into their neighbours,
/// `.` is dropped, `..` removes the one before; both leave the path ending
/// in a slash, as `/a/b/..` is `/a/`.
fn push_segment(segments: &mut Vec<String>, current: &mut String, trailing_slash: &mut bool) {
    match current.as_str() {
        "" => {}
        "." => *trailing_slash = true,
        ".." => {
            segments.pop();
            *trailing_slash = true;
        }
        _ => segments.push(std::mem::take(current)),
    }
    current.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn norm(raw: &str) -> String {
        normalize(raw).unwrap().to_request_path()
    }

    #[test]
    fn clean_paths_stay_as_they_are() {
        for p in ["/", "/a", "/a/b/", "/api/v1/payments?x=1&y=%2F", "/a%20b", "/~user/x-y_z.txt"] {
            assert_eq!(norm(p), p);
        }
    }

    #[test]
    fn dot_segments_are_removed_never_above_the_root() {
        assert_eq!(norm("/a/./b"), "/a/b");
        assert_eq!(norm("/a/b/../c"), "/a/c");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/b/."), "/a/b/");
        assert_eq!(norm("/../../admin"), "/admin");
        assert_eq!(norm("/public/../admin"), "/admin");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/..."), "/...", "three dots are a name");
        assert_eq!(norm("/a/.b/..c"), "/a/.b/..c");
    }

    #[test]
    fn encoded_dots_and_slashes_cannot_hide_a_segment() {
        assert_eq!(norm("/public/%2e%2e/admin"), "/admin");
        assert_eq!(norm("/public/%2E%2E%2Fadmin"), "/admin");
        assert_eq!(norm("/public/.%2e/admin"), "/admin");
        assert_eq!(norm("/admin%2fsecret"), "/admin/secret");
        assert_eq!(norm("/admin%5Csecret"), "/admin/secret");
        assert_eq!(norm("/public\\..\\admin"), "/admin");
        assert_eq!(norm("/%61dmin"), "/admin", "unreserved escapes are decoded");
    }

    #[test]
    fn slashes_merge() {
        assert_eq!(norm("//admin"), "/admin");
        assert_eq!(norm("/a//b///c//"), "/a/b/c/");
        assert_eq!(norm("/%2F/admin"), "/admin");
    }

    #[test]
    fn reserved_escapes_stay_encoded_in_upper_case_and_are_not_decoded_twice() {
        assert_eq!(norm("/a%3ab"), "/a%3Ab");
        assert_eq!(norm("/a%252e%252e/b"), "/a%252e%252e/b");
        assert_eq!(norm("/caf%C3%A9"), "/caf%C3%A9");
    }

    #[test]
    fn query_is_kept_and_fragment_dropped() {
        let n = normalize("/a/../b?x=/../y#frag").unwrap();
        assert_eq!(n.path, "/b");
        assert_eq!(n.query.as_deref(), Some("x=/../y"));
        assert_eq!(norm("/admin#/public"), "/admin");
        assert_eq!(norm("/a?"), "/a?");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(normalize("/admin%00.html"), Err(UnsafePath::EncodedNul));
        assert_eq!(normalize("/a%zz"), Err(UnsafePath::BadEscape));
        assert_eq!(normalize("/a%4"), Err(UnsafePath::BadEscape));
        assert_eq!(normalize("/a%"), Err(UnsafePath::BadEscape));
        assert_eq!(normalize("/public/..;/admin"), Err(UnsafePath::PathParameter));
        assert_eq!(normalize("/admin;jsessionid=1"), Err(UnsafePath::PathParameter));
        assert_eq!(normalize("/a b"), Err(UnsafePath::BadByte(b' ')));
        assert_eq!(normalize("/a\tb"), Err(UnsafePath::BadByte(b'\t')));
        assert_eq!(normalize("/caf\u{e9}"), Err(UnsafePath::BadByte(0xc3)));
        assert_eq!(normalize("*"), Err(UnsafePath::NotAbsolute));
        assert_eq!(normalize("http://evil/admin"), Err(UnsafePath::NotAbsolute));
        assert_eq!(normalize(""), Err(UnsafePath::NotAbsolute));
    }

    /// Random paths from the characters that matter: normalizing never
    /// panics, and what it returns is absolute, has no dot or empty
    /// segment and no escaped slash, and normalizes to itself.
    #[test]
    fn any_path_normalizes_safely_or_is_refused() {
        const PIECES: [&str; 20] =
            ["/", "//", "\\", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%", "%4", "%41", "%25", ";", "?", "#", "a", "\u{e9}"];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15; // fixed seed: the same cases every run
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut normalized = 0;
        for _ in 0..20_000 {
            let len = next() % 12;
            let mut raw = String::from("/");
            for _ in 0..len {
                raw.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let Ok(n) = normalize(&raw) else { continue };
            let p = &n.path;
            assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
            assert!(!p.contains("//"), "{raw:?} -> {p:?}");
            assert!(!p.split('/').any(|s| s == "." || s == ".."), "{raw:?} -> {p:?}");
            assert!(!p.to_ascii_uppercase().contains("%2F") && !p.to_ascii_uppercase().contains("%5C"), "{raw:?} -> {p:?}");
            assert!(!p.contains('\\') && !p.contains(';'), "{raw:?} -> {p:?}");
            assert_eq!(normalize(&n.to_request_path()).as_ref(), Ok(&n), "{raw:?}");
            normalized += 1;
        }
        assert!(normalized > 5_000, "only {normalized} of the random paths were normalizable");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in ["/a/%2e%2e/b//c/", "/x%2fy%5c..%2f/z", "/a/./b/../../../c?q=1", "/%7Euser/%41"] {
            let once = norm(p);
            assert_eq!(norm(&once), once, "{p}");
        }
    }
}
