//! The readings that a backend may give a request besides the canonical one
//! the upstream receives: its path decoded once more, compared without
//! case, with `;` parameters and trailing dots or spaces removed from its
//! segments; its method in upper case. A DENY condition matches when it
//! matches under any reading; an ALLOW condition only under the canonical
//! one. Computed only when a DENY (or AUDIT) rule reads the path or method.

use crate::path::{push_segment, UnsafePath};
use filter_common::codec::hex_value;
use std::borrow::Cow;
use std::fmt;

/// A set of readings, as bits: what was applied to read a request (in a
/// decision), or what is switched on (in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading(u8);

impl Reading {
    /// The path the upstream receives, the method as sent.
    pub const CANONICAL: Self = Self(0);
    /// Every escape left in the path decoded, then once more.
    pub const DECODED_AGAIN: Self = Self(1);
    /// `;…` and trailing dots and spaces removed from each segment.
    pub const PARAMETERS_REMOVED: Self = Self(2);
    /// The path compared without case.
    pub const CASE_FOLDED: Self = Self(4);
    /// The method in upper case.
    pub const METHOD_CASE_FOLDED: Self = Self(8);
    pub const ALL: Self = Self(15);

    /// The configuration's names, in the README's order.
    pub const NAMES: [(&'static str, Self); 4] = [
        ("decodedAgain", Self::DECODED_AGAIN),
        ("caseFolded", Self::CASE_FOLDED),
        ("parametersRemoved", Self::PARAMETERS_REMOVED),
        ("methodCaseFolded", Self::METHOD_CASE_FOLDED),
    ];

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    #[must_use]
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    #[must_use]
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::CANONICAL {
            return f.write_str("canonical");
        }
        let words = [
            (Self::DECODED_AGAIN, "decoded again"),
            (Self::PARAMETERS_REMOVED, "parameters removed"),
            (Self::CASE_FOLDED, "case-folded"),
            (Self::METHOD_CASE_FOLDED, "method case-folded"),
        ];
        let mut first = true;
        for (bit, word) in words {
            if self.contains(bit) {
                if !first {
                    f.write_str(" + ")?;
                }
                f.write_str(word)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// The readings of one request that differ from the canonical one.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// Switched on by the configuration.
    pub enabled: Reading,
    /// Other readings of the path, each with how it was read, each unlike
    /// the canonical path and the others.
    pub paths: Vec<(Reading, String)>,
    /// The method in upper case, if that differs from what was sent.
    pub method: Option<String>,
}

impl Readings {
    /// Reads a canonical path (see `path::normalize`) and method. A path
    /// that is unsafe once decoded again (`%2500`, overlong forms behind
    /// `%25`) cannot be judged under that reading, so it is refused.
    pub fn of(canonical: &str, method: Option<&str>, enabled: Reading) -> Result<Self, UnsafePath> {
        let mut paths: Vec<(Reading, String)> = Vec::new();
        let add = |paths: &mut Vec<(Reading, String)>, reading: Reading, path: String| {
            if path != canonical && !paths.iter().any(|(_, p)| *p == path) {
                paths.push((reading, path));
            }
        };
        if enabled.contains(Reading::DECODED_AGAIN) && canonical.contains('%') {
            let once = decode_pass(canonical)?;
            let twice = if once.contains('%') { Some(decode_pass(&once)?) } else { None };
            add(&mut paths, Reading::DECODED_AGAIN, once);
            if let Some(twice) = twice {
                add(&mut paths, Reading::DECODED_AGAIN, twice);
            }
        }
        if enabled.contains(Reading::PARAMETERS_REMOVED) {
            let stripped: Vec<(Reading, String)> = std::iter::once((Reading::CANONICAL, canonical))
                .chain(paths.iter().map(|(r, p)| (*r, p.as_str())))
                .filter_map(|(r, p)| strip_parameters(p).map(|s| (r.with(Reading::PARAMETERS_REMOVED), s)))
                .collect();
            for (r, p) in stripped {
                add(&mut paths, r, p);
            }
        }
        let method = method
            .filter(|m| enabled.contains(Reading::METHOD_CASE_FOLDED) && m.bytes().any(|b| b.is_ascii_lowercase()))
            .map(str::to_ascii_uppercase);
        Ok(Self { enabled, paths, method })
    }
}

/// Case-folded as a case-insensitive backend compares: ASCII lower case,
/// and for other letters upper then lower case (so `ſ` is `s`, `K` is `k`).
pub fn fold(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(text.to_ascii_lowercase())
        } else {
            Cow::Borrowed(text)
        }
    } else {
        Cow::Owned(text.chars().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect())
    }
}

/// Decodes every escape once (`%3A` → `:`, `%25` → `%`), then splits on
/// `/` and `\` and removes dot and empty segments again.
fn decode_pass(path: &str) -> Result<String, UnsafePath> {
    let bytes = path.as_bytes();
    let mut segments: Vec<String> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut trailing_slash = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        let decoded = match (b, bytes.get(i).copied().and_then(hex_value), bytes.get(i + 1).copied().and_then(hex_value)) {
            (b'%', Some(hi), Some(lo)) => {
                i += 2;
                hi << 4 | lo
            }
            _ => b,
        };
        match decoded {
            0 => return Err(UnsafePath::EncodedNul),
            b'/' | b'\\' => {
                end_segment(&mut segments, &mut current, &mut trailing_slash)?;
                trailing_slash = true;
            }
            d => {
                current.push(d);
                trailing_slash = false;
            }
        }
    }
    end_segment(&mut segments, &mut current, &mut trailing_slash)?;
    Ok(join(&segments, trailing_slash))
}

fn end_segment(segments: &mut Vec<String>, current: &mut Vec<u8>, trailing_slash: &mut bool) -> Result<(), UnsafePath> {
    let mut text = String::from_utf8(std::mem::take(current)).map_err(|_| UnsafePath::InvalidUtf8)?;
    push_segment(segments, &mut text, trailing_slash);
    Ok(())
}

fn join(segments: &[String], trailing_slash: bool) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// Each segment as Tomcat, Jetty or Spring (`;…` dropped) and IIS (trailing
/// dots and spaces dropped, `%20` being a space) read it, dot segments
/// removed again: `/public/..;/admin` and `/admin.` are `/admin`. None when
/// nothing changes.
fn strip_parameters(path: &str) -> Option<String> {
    // The common case, checked without allocating: nothing to strip.
    let suspect = path.bytes().any(|b| matches!(b, b';' | b'.' | b' ' | b'%'));
    let strippable = |s: &str| s.contains(';') || s.ends_with(['.', ' ']) || s.ends_with("%20");
    if !suspect || !path.split('/').any(strippable) {
        return None;
    }
    let trailing_slash = path.ends_with('/');
    let mut changed = false;
    let mut segments: Vec<String> = Vec::new();
    let mut ends_in_slash = false;
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let without_parameters = raw.split_once(';').map_or(raw, |(before, _)| before);
        let no_spaces = trim_spaces(without_parameters);
        let mut segment = if no_spaces == "." || no_spaces == ".." {
            no_spaces.to_string()
        } else {
            trim_dots_and_spaces(without_parameters).to_string()
        };
        changed |= segment != raw;
        // A segment that strips to nothing, or a dot segment, leaves a slash.
        ends_in_slash = segment.is_empty();
        push_segment(&mut segments, &mut segment, &mut ends_in_slash);
    }
    changed.then(|| join(&segments, trailing_slash || ends_in_slash))
}

fn trim_spaces(mut s: &str) -> &str {
    loop {
        let next = s.strip_suffix(' ').or_else(|| s.strip_suffix("%20"));
        match next {
            Some(t) => s = t,
            None => return s,
        }
    }
}

fn trim_dots_and_spaces(mut s: &str) -> &str {
    loop {
        let next = s.strip_suffix(' ').or_else(|| s.strip_suffix("%20")).or_else(|| s.strip_suffix('.'));
        match next {
            Some(t) => s = t,
            None => return s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn paths(canonical: &str, enabled: Reading) -> Vec<(String, String)> {
        Readings::of(canonical, None, enabled).unwrap().paths.into_iter().map(|(r, p)| (r.to_string(), p)).collect()
    }

    fn pair(r: &str, p: &str) -> (String, String) {
        (r.to_string(), p.to_string())
    }

    #[test]
    fn a_clean_path_has_no_other_reading() {
        for p in ["/", "/api/orders", "/api/orders/7/", "/a.b/c-d_e~f"] {
            assert!(paths(p, Reading::ALL).is_empty(), "{p}");
        }
    }

    #[test]
    fn decoded_again_completes_the_first_decoding_then_decodes_once_more() {
        assert_eq!(paths("/a%3Ab", Reading::ALL), vec![pair("decoded again", "/a:b")]);
        // %252e%252e (accepted with the opt-out): a second decoder sees `..`.
        assert_eq!(
            paths("/api/orders/%252e%252e/admin", Reading::DECODED_AGAIN),
            vec![pair("decoded again", "/api/orders/%2e%2e/admin"), pair("decoded again", "/api/admin")]
        );
        assert_eq!(paths("/a%252Fb", Reading::DECODED_AGAIN), vec![pair("decoded again", "/a%2Fb"), pair("decoded again", "/a/b")]);
        assert_eq!(paths("/caf%C3%A9", Reading::DECODED_AGAIN), vec![pair("decoded again", "/caf\u{e9}")]);
        assert_eq!(paths("/100%25", Reading::DECODED_AGAIN), vec![pair("decoded again", "/100%")]);
        assert!(paths("/a%3Ab", Reading::ALL.without(Reading::DECODED_AGAIN)).is_empty());
    }

    #[test]
    fn unsafe_once_decoded_again_is_refused() {
        assert_eq!(Readings::of("/a%2500", None, Reading::ALL).err(), Some(UnsafePath::EncodedNul));
        assert_eq!(Readings::of("/%25c0%25ae%25c0%25ae/admin", None, Reading::ALL).err(), Some(UnsafePath::InvalidUtf8));
        assert!(Readings::of("/a%2500", None, Reading::CASE_FOLDED).is_ok(), "not read decoded again: nothing to refuse");
    }

    #[test]
    fn parameters_trailing_dots_and_spaces_are_removed() {
        let removed = |p| paths(p, Reading::PARAMETERS_REMOVED);
        assert_eq!(removed("/admin."), vec![pair("parameters removed", "/admin")]);
        assert_eq!(removed("/admin.%20."), vec![pair("parameters removed", "/admin")]);
        assert_eq!(removed("/admin%20/keys"), vec![pair("parameters removed", "/admin/keys")]);
        assert_eq!(removed("/public/.../admin"), vec![pair("parameters removed", "/public/admin")]);
        assert_eq!(removed("/admin/..."), vec![pair("parameters removed", "/admin/")]);
        assert_eq!(removed("/a/b./"), vec![pair("parameters removed", "/a/b/")]);
        // `;` reaches a reading through %3B, decoded again.
        assert_eq!(
            paths("/public/..%3B/admin", Reading::DECODED_AGAIN.with(Reading::PARAMETERS_REMOVED)),
            vec![pair("decoded again", "/public/..;/admin"), pair("decoded again + parameters removed", "/admin")]
        );
        assert_eq!(
            paths("/admin%3Bjsessionid=1", Reading::ALL),
            vec![pair("decoded again", "/admin;jsessionid=1"), pair("decoded again + parameters removed", "/admin")]
        );
        assert!(removed("/a.b/c").is_empty());
    }

    #[test]
    fn methods_are_read_in_upper_case() {
        assert_eq!(Readings::of("/", Some("delete"), Reading::ALL).unwrap().method.as_deref(), Some("DELETE"));
        assert_eq!(Readings::of("/", Some("DELETE"), Reading::ALL).unwrap().method, None);
        assert_eq!(Readings::of("/", Some("delete"), Reading::CASE_FOLDED).unwrap().method, None);
    }

    #[test]
    fn folding_matches_what_case_insensitive_backends_compare() {
        assert_eq!(fold("/Admin/KEYS"), "/admin/keys");
        assert!(matches!(fold("/admin"), Cow::Borrowed(_)));
        assert_eq!(fold("/\u{17f}ecret"), "/secret", "long s upper-cases to S");
        assert_eq!(fold("/\u{212a}eys"), "/keys", "the Kelvin sign is K");
    }

    #[test]
    fn readings_are_named_for_the_log() {
        assert_eq!(Reading::CANONICAL.to_string(), "canonical");
        assert_eq!(Reading::DECODED_AGAIN.with(Reading::CASE_FOLDED).to_string(), "decoded again + case-folded");
        assert_eq!(Reading::METHOD_CASE_FOLDED.to_string(), "method case-folded");
    }
}
