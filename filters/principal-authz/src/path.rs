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
            Some(q) => [self.path.as_str(), "?", q].concat(),
            None => self.path.clone(),
        }
    }

    /// Whether `raw` is already the request path this stands for, so the
    /// `:path` needs no rewrite (checked without building the new one).
    pub fn is_request_path(&self, raw: &str) -> bool {
        match (&self.query, raw.split_once('?')) {
            (Some(q), Some((p, rq))) => p == self.path && rq == q,
            (None, None) => raw == self.path,
            _ => false,
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
    /// Escapes that decode to bytes which are not UTF-8: overlong forms
    /// (`%c0%ae` for `.`), surrogates, stray continuation bytes, truncated
    /// sequences. Old decoders fold some of them into `.` or `/`.
    InvalidUtf8,
    /// `%25` followed by two hex digits: a backend that decodes twice reads
    /// `%252e` as `.`.
    DoubleEncoding,
}

impl fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsolute => f.write_str("the path does not start with /"),
            Self::EncodedNul => f.write_str("the path contains %00"),
            Self::BadEscape => f.write_str("the path contains a % not followed by two hex digits"),
            Self::BadByte(b) => write!(f, "the path contains the byte 0x{b:02x}"),
            Self::PathParameter => f.write_str("the path contains a ; path parameter"),
            Self::InvalidUtf8 => f.write_str("the path's escapes decode to invalid UTF-8"),
            Self::DoubleEncoding => f.write_str("the path contains a double-encoded escape (%25 and two hex digits)"),
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
///    escapes, escapes that decode to invalid UTF-8, `%25` and two hex
///    digits (unless `allow_double_encoding`), controls, spaces, non-ASCII
///    bytes and `;` make it unsafe;
/// 3. a backslash is a slash (as browsers and many servers read it);
/// 4. empty segments are merged and `.` / `..` removed (RFC 3986 5.2.4,
///    never above the root); a trailing slash stays.
pub fn normalize(raw: &str) -> Result<NormalizedPath, UnsafePath> {
    normalize_with(raw, false)
}

/// [`normalize`], with `%25XX` accepted (and kept encoded) when
/// `allow_double_encoding`.
pub fn normalize_with(raw: &str, allow_double_encoding: bool) -> Result<NormalizedPath, UnsafePath> {
    // The path ends at the first `?` or `#`; a query, at the first `#` after it.
    let (path, query) = match raw.bytes().position(|b| b == b'?' || b == b'#') {
        Some(cut) => {
            let rest = raw.get(cut..).unwrap_or_default();
            let query = rest.strip_prefix('?').map(|q| q.split_once('#').map_or(q, |(q, _)| q).to_string());
            (raw.get(..cut).unwrap_or_default(), query)
        }
        None => (raw, None),
    };
    if !path.starts_with('/') {
        return Err(UnsafePath::NotAbsolute);
    }
    if is_normal(path) {
        return Ok(NormalizedPath { path: path.to_string(), query });
    }
    normalize_segments(path, query, allow_double_encoding)
}

/// A path that normalizing would leave as it is (the common case, decided
/// in one pass without building anything): printable ASCII with no escape,
/// backslash or path parameter, no empty segment and no dot segment.
fn is_normal(path: &str) -> bool {
    // The current segment's length, and whether it is all dots.
    let (mut len, mut dots) = (0usize, true);
    let dot_segment = |len: usize, dots: bool| dots && (len == 1 || len == 2);
    for (i, &b) in path.as_bytes().iter().enumerate() {
        if !matches!(b, 0x21..=0x7e) || matches!(b, b'%' | b'\\' | b';') {
            return false;
        }
        if b == b'/' {
            // An empty segment (`//`) or a dot segment ends here.
            if (i > 0 && len == 0) || dot_segment(len, dots) {
                return false;
            }
            (len, dots) = (0, true);
        } else {
            len += 1;
            dots &= b == b'.';
        }
    }
    !dot_segment(len, dots)
}

fn normalize_segments(path: &str, query: Option<String>, allow_double_encoding: bool) -> Result<NormalizedPath, UnsafePath> {
    // Segments with their text decoded; `/` and `\` (raw or escaped) split.
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut trailing_slash = false;
    let bytes = path.as_bytes();
    // Consecutive escapes of bytes >= 0x80: one UTF-8 sequence or more.
    let mut high_run: Vec<u8> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        let high = b == b'%' && bytes.get(i).copied().and_then(hex_value).is_some_and(|hi| hi >= 8);
        if !high && !high_run.is_empty() {
            check_utf8(&mut high_run)?;
        }
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
                    d if d >= 0x80 => {
                        high_run.push(d);
                        Some(Segment::Escape(d))
                    }
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
    check_utf8(&mut high_run)?;
    push_segment(&mut segments, &mut current, &mut trailing_slash);
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    // On the decoded text: `%25%32%65` is `%252e` once its digits are decoded.
    if !allow_double_encoding && out.contains('%') && has_double_encoding(&out) {
        return Err(UnsafePath::DoubleEncoding);
    }
    Ok(NormalizedPath { path: out, query })
}

/// `%25` and two hex digits, in a normalized path (escapes in upper case).
fn has_double_encoding(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.match_indices("%25").any(|(at, _)| {
        bytes.get(at + 3).copied().and_then(hex_value).is_some() && bytes.get(at + 4).copied().and_then(hex_value).is_some()
    })
}

/// A run of decoded high bytes must be whole UTF-8 (Rust's decoder refuses
/// overlong forms, surrogates, stray and missing continuation bytes).
fn check_utf8(run: &mut Vec<u8>) -> Result<(), UnsafePath> {
    let ok = std::str::from_utf8(run).is_ok();
    run.clear();
    if ok {
        Ok(())
    } else {
        Err(UnsafePath::InvalidUtf8)
    }
}

enum Segment {
    Char(char),
    Escape(u8),
}

/// Ends the segment being read: empty ones merge into their neighbours,
/// `.` is dropped, `..` removes the one before; both leave the path ending
/// in a slash, as `/a/b/..` is `/a/`.
pub(crate) fn push_segment(segments: &mut Vec<String>, current: &mut String, trailing_slash: &mut bool) {
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

    /// The fast path's checks written the plain way, as the reference.
    fn reference_split(raw: &str) -> (&str, Option<&str>) {
        let without_fragment = raw.split_once('#').map_or(raw, |(before, _)| before);
        match without_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (without_fragment, None),
        }
    }

    fn reference_is_normal(path: &str) -> bool {
        path.bytes().all(|b| matches!(b, 0x21..=0x7e) && !matches!(b, b'%' | b'\\' | b';'))
            && !path.contains("//")
            && !path.split('/').any(|segment| segment == "." || segment == "..")
    }

    #[test]
    fn the_one_pass_checks_agree_with_the_plain_ones() {
        // Short paths over the bytes the checks look at. The control: each
        // answer of the reference turns up many times, so neither check can
        // agree by always saying the same.
        let alphabet = [b'/', b'/', b'.', b'.', b'a', b'%', b';', b'\\', b'?', b'#', b' '];
        let mut next = filter_common::test_rng::xorshift(0x005E_ED0F_9A7B);
        let (mut normal, mut not_normal) = (0, 0);
        for _ in 0..50_000 {
            let len = 1 + (next() % 9) as usize;
            let mut raw = vec![b'/'];
            raw.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
            let raw = String::from_utf8(raw).unwrap();
            let (path, query) = reference_split(&raw);
            let ours = normalize_with(&raw, false);
            assert_eq!(is_normal(path), reference_is_normal(path), "{raw:?}");
            if reference_is_normal(path) {
                normal += 1;
                let ours = ours.unwrap();
                assert_eq!((ours.path.as_str(), ours.query.as_deref()), (path, query), "{raw:?}");
            } else {
                not_normal += 1;
            }
        }
        assert!(normal > 1_000 && not_normal > 1_000, "{normal} normal, {not_normal} not");
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
        assert_eq!(normalize_with("/a%252e%252e/b", true).unwrap().path, "/a%252e%252e/b");
        assert_eq!(norm("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(norm("/100%25"), "/100%25", "%25 alone is a percent sign, not a second encoding");
        assert_eq!(norm("/100%25zz"), "/100%25zz");
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

    #[test]
    fn double_encoding_is_refused_unless_allowed() {
        for p in ["/a%252e%252e/admin", "/%2561dmin", "/x%252F"] {
            assert_eq!(normalize(p), Err(UnsafePath::DoubleEncoding), "{p}");
        }
        // Hex digits that are themselves escaped count once decoded.
        assert_eq!(normalize("/a%25%32%65"), Err(UnsafePath::DoubleEncoding));
        assert_eq!(normalize_with("/%2561dmin", true).unwrap().path, "/%2561dmin");
    }

    /// Overlong forms, surrogates, stray continuation bytes and truncated
    /// sequences; the same bytes as whole sequences pass.
    #[test]
    fn escapes_that_decode_to_invalid_utf8_are_refused() {
        for p in [
            "/%c0%ae%c0%ae/admin",
            "/a%c0%af",
            "/%e0%80%ae",
            "/%f0%80%80%ae",
            "/%ed%a0%80",
            "/%80",
            "/a%bf/b",
            "/%c3",
            "/%c3/%a9",
            "/%e2%82",
            "/%f8%88%80%80%80",
            "/%ff",
            "/%C3%A9%A9",
        ] {
            assert_eq!(normalize(p), Err(UnsafePath::InvalidUtf8), "{p}");
        }
        for p in ["/caf%C3%A9", "/%e2%82%ac", "/%F0%9F%98%80/x", "/%c3%a9%c3%a9"] {
            assert!(normalize(p).is_ok(), "{p}");
        }
    }

    /// Random paths from the characters that matter: normalizing never
    /// panics, and what it returns is absolute, has no dot or empty
    /// segment and no escaped slash, and normalizes to itself.
    #[test]
    fn any_path_normalizes_safely_or_is_refused() {
        const PIECES: [&str; 20] =
            ["/", "//", "\\", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%", "%4", "%41", "%25", ";", "?", "#", "a", "\u{e9}"];
        let mut next = filter_common::test_rng::xorshift(0x9e37_79b9_7f4a_7c15); // fixed seed: the same cases every run
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

    #[test]
    fn the_shortcut_for_normal_paths_agrees_with_the_full_normalization() {
        let alphabet = b"/./a%2F;\\b.%2e";
        let mut next = filter_common::test_rng::xorshift(0x51f1_5eed_0ddb_a11d); // fixed seed: the same cases every run
        let mut shortcuts = 0;
        for _ in 0..5000 {
            let len = (next() % 12) as usize;
            let tail: String = (0..len).map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize])).collect();
            let path = format!("/{tail}");
            if is_normal(&path) {
                shortcuts += 1;
                assert_eq!(normalize_segments(&path, None, false).as_ref().map(|p| p.path.as_str()), Ok(path.as_str()), "{path}");
            }
            assert_eq!(normalize_with(&path, false), normalize_segments(&path, None, false), "{path}");
        }
        assert!(shortcuts > 100, "the generator reaches the shortcut: {shortcuts}");
    }

}
