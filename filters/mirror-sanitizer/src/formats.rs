//! Detectors for published secret and identifier formats: US Social
//! Security numbers (with the SSA's rules on invalid numbers), AWS secret
//! access keys (by format and the name beside them), PEM private key
//! blocks, provider tokens whose prefixes are public (GitHub, GitLab,
//! Slack, Stripe, Google, npm, PyPI, …), and credential parameters such as
//! the signatures of signed URLs inside free text. Each appends the byte
//! ranges it matches.

use crate::text::{at, before};

/// `ddd-dd-dddd` (or with spaces): not area 000, 666 or 900–999, not
/// group 00, not serial 0000.
pub fn find_ssns(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i + 11 <= text.len() {
        let b = before(text, i);
        if !at(text, i).is_ascii_digit() || b.is_ascii_alphanumeric() || b == b'-' {
            i += 1;
            continue;
        }
        let sep = at(text, i + 3);
        let shape = (sep == b'-' || sep == b' ')
            && at(text, i + 6) == sep
            && [0, 1, 2, 4, 5, 7, 8, 9, 10].iter().all(|&k| at(text, i + k).is_ascii_digit())
            && !at(text, i + 11).is_ascii_alphanumeric()
            && at(text, i + 11) != b'-';
        if shape && ssn_valid(text.get(i..i + 11).unwrap_or_default()) {
            out.push((i, i + 11));
            i += 11;
        } else {
            i += 1;
        }
    }
}

fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(d.wrapping_sub(b'0')))
}

fn ssn_valid(s: &[u8]) -> bool {
    let area = number(s.get(0..3).unwrap_or_default());
    let group = number(s.get(4..6).unwrap_or_default());
    let serial = number(s.get(7..11).unwrap_or_default());
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn is_aws_secret_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}

/// Forty characters of `[A-Za-z0-9/+]` with upper- and lower-case letters,
/// either with a `/` or `+` in them or with `secret`, `aws` or `key` in the
/// 64 bytes before (`aws_secret_access_key = …`).
pub fn find_aws_secret_keys(text: &[u8], out: &mut Vec<(usize, usize)>) {
    runs_through_every(KEY_LEN, text, is_aws_secret_char, |start, end| {
        if end - start == KEY_LEN && aws_secret_key_at(text, start, end) {
            out.push((start, end));
        }
    });
}

/// Calls `each` with every longest run of `is_char` bytes that holds one
/// of the places `stride - 1`, `2 * stride - 1`, …: every run `stride`
/// long or longer does, and ordinary text is mostly stepped over.
fn runs_through_every(stride: usize, text: &[u8], is_char: impl Fn(u8) -> bool, mut each: impl FnMut(usize, usize)) {
    let mut p = stride.saturating_sub(1);
    while p < text.len() {
        if !is_char(at(text, p)) {
            p += stride;
            continue;
        }
        let mut start = p;
        while start > 0 && is_char(before(text, start)) {
            start -= 1;
        }
        let mut end = p + 1;
        while is_char(at(text, end)) {
            end += 1;
        }
        each(start, end);
        // The first of the places at or after the run's end.
        p += (end - p).div_ceil(stride) * stride;
    }
}

/// An AWS secret access key's length.
const KEY_LEN: usize = 40;

/// The run `start..end` of key characters is a key: not cut from a longer
/// base64url or padded text, both cases, and a sign or a name.
fn aws_secret_key_at(text: &[u8], start: usize, end: usize) -> bool {
    if at(text, end) == b'=' || is_b64url_extra(at(text, end)) || is_b64url_extra(before(text, start)) {
        return false;
    }
    let key = text.get(start..end).unwrap_or_default();
    let mixed = key.iter().any(u8::is_ascii_uppercase) && key.iter().any(u8::is_ascii_lowercase);
    let base64ish = key.iter().any(|&b| b == b'/' || b == b'+');
    mixed && (base64ish || named_before(text, start))
}

fn is_b64url_extra(b: u8) -> bool {
    b == b'-' || b == b'_'
}

fn named_before(text: &[u8], start: usize) -> bool {
    let window = text.get(start.saturating_sub(64)..start).unwrap_or_default();
    [b"secret".as_slice(), b"aws", b"key"].iter().any(|w| window.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w)))
}

fn find_from(text: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    text.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// `-----BEGIN … PRIVATE KEY-----` to its `-----END …-----` line, or to
/// the end of the text when the block is cut off.
pub fn find_private_keys(text: &[u8], out: &mut Vec<(usize, usize)>) {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut from = 0;
    while let Some(start) = find_from(text, BEGIN, from) {
        let label_start = start + BEGIN.len();
        let Some(label_end) = find_from(text, b"-----", label_start) else { return };
        let label = text.get(label_start..label_end).unwrap_or_default();
        if !label.windows(11).any(|w| w == b"PRIVATE KEY") {
            from = label_end;
            continue;
        }
        let end = match find_from(text, b"-----END ", label_end + 5) {
            Some(e) => find_from(text, b"-----", e + 9).map_or(text.len(), |d| d + 5),
            None => text.len(),
        };
        out.push((start, end));
        from = end;
    }
}

/// Character sets of token bodies.
#[derive(Clone, Copy)]
enum Charset {
    /// `[A-Za-z0-9]`
    Alnum,
    /// `[A-Za-z0-9_-]`
    Url,
    /// `[A-Za-z0-9_.-]`
    Dotted,
    /// `[0-9a-f]`
    Hex,
    /// `[A-Za-z0-9/]` (webhook paths)
    Path,
}

impl Charset {
    fn has(self, b: u8) -> bool {
        match self {
            Charset::Alnum => b.is_ascii_alphanumeric(),
            Charset::Url => b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
            Charset::Dotted => b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.',
            Charset::Hex => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            Charset::Path => b.is_ascii_alphanumeric() || b == b'/',
        }
    }
}

/// Published token prefixes: the prefix, the shortest body after it, and
/// the body's characters.
const PROVIDER_TOKENS: &[(&[u8], usize, Charset)] = &[
    (b"ghp_", 36, Charset::Alnum),
    (b"gho_", 36, Charset::Alnum),
    (b"ghu_", 36, Charset::Alnum),
    (b"ghs_", 36, Charset::Alnum),
    (b"ghr_", 36, Charset::Alnum),
    (b"github_pat_", 22, Charset::Url),
    (b"glpat-", 20, Charset::Url),
    (b"gldt-", 20, Charset::Url),
    (b"glrt-", 20, Charset::Url),
    (b"glcbt-", 20, Charset::Url),
    (b"xoxb-", 10, Charset::Url),
    (b"xoxp-", 10, Charset::Url),
    (b"xoxa-", 10, Charset::Url),
    (b"xoxr-", 10, Charset::Url),
    (b"xoxs-", 10, Charset::Url),
    (b"xoxe-", 10, Charset::Url),
    (b"xapp-", 10, Charset::Url),
    (b"hooks.slack.com/services/", 20, Charset::Path),
    (b"sk_live_", 10, Charset::Alnum),
    (b"sk_test_", 10, Charset::Alnum),
    (b"rk_live_", 10, Charset::Alnum),
    (b"rk_test_", 10, Charset::Alnum),
    (b"whsec_", 16, Charset::Alnum),
    (b"AIza", 35, Charset::Url),
    (b"npm_", 36, Charset::Alnum),
    (b"pypi-", 50, Charset::Url),
    (b"SG.", 60, Charset::Dotted),
    (b"dop_v1_", 64, Charset::Hex),
    (b"doo_v1_", 64, Charset::Hex),
    (b"shpat_", 32, Charset::Hex),
    (b"shpss_", 32, Charset::Hex),
    (b"shpca_", 32, Charset::Hex),
    (b"hvs.", 24, Charset::Url),
    (b"sq0atp-", 22, Charset::Url),
    (b"sq0csp-", 22, Charset::Url),
    (b"sk-", 32, Charset::Url),
    (b"SK", 32, Charset::Hex),
];

/// Per byte, the prefixes that start with it (bit `i`: `PROVIDER_TOKENS[i]`).
#[allow(clippy::indexing_slicing)] // evaluated at compile time
const fn first_bytes() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < PROVIDER_TOKENS.len() {
        let (prefix, _, _) = PROVIDER_TOKENS[i];
        t[prefix[0] as usize] |= 1 << i;
        i += 1;
    }
    t
}

// Evaluated at compile time: an index out of range (or more prefixes than
// bits) would fail the build.
#[allow(clippy::indexing_slicing)]
const FIRST: [u64; 256] = first_bytes();

/// The characters of every prefix and body above.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
}

/// The shortest token: a prefix and the least body after it.
// Evaluated at compile time: an index out of range would fail the build.
#[allow(clippy::indexing_slicing)]
const SHORTEST_TOKEN: usize = {
    let mut least = usize::MAX;
    let mut i = 0;
    while i < PROVIDER_TOKENS.len() {
        let (prefix, min, _) = PROVIDER_TOKENS[i];
        if prefix.len() + min < least {
            least = prefix.len() + min;
        }
        i += 1;
    }
    least
};

pub fn find_provider_tokens(text: &[u8], out: &mut Vec<(usize, usize)>) {
    // A token lies in a run of token characters at least `SHORTEST_TOKEN` long.
    runs_through_every(SHORTEST_TOKEN, text, is_token_char, |start, end| {
        if end - start >= SHORTEST_TOKEN {
            provider_tokens_in(text, start, end, out);
        }
    });
}

/// The tokens inside `from..to` (a run of token characters).
fn provider_tokens_in(text: &[u8], from: usize, to: usize, out: &mut Vec<(usize, usize)>) {
    let mut i = from;
    while i < to {
        let b = at(text, i);
        let mut candidates = FIRST.get(usize::from(b)).copied().unwrap_or(0);
        if candidates == 0 || before(text, i).is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let mut matched = None;
        // Only the prefixes that start with this byte, in the list's order.
        while candidates != 0 {
            let k = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let Some(&(prefix, min, charset)) = PROVIDER_TOKENS.get(k) else { break };
            if text.get(i..i + prefix.len()) != Some(prefix) {
                continue;
            }
            let body = i + prefix.len();
            let mut end = body;
            while charset.has(at(text, end)) {
                end += 1;
            }
            if end - body >= min {
                matched = Some(end);
                break;
            }
        }
        match matched {
            Some(end) => {
                out.push((i, end));
                i = end;
            }
            None => i += 1,
        }
    }
}

/// Parameter names whose values are credentials wherever a `name=value`
/// pair sits in free text (`…&X-Amz-Signature=…`, `sig=…`).
const CREDENTIAL_PARAMS: &[&[u8]] = &[b"signature", b"sig", b"credential", b"token", b"secret", b"password", b"passwd", b"key"];

fn is_param_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn ends_value(b: u8) -> bool {
    matches!(b, 0 | b'&' | b';' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'<' | b'>' | b'#' | b',')
}

/// Values of credential parameters in text: the signature, credential and
/// token parameters of signed URLs (AWS, Google, Azure SAS), `key=…`.
pub fn find_credential_params(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(eq) = text.get(from..).and_then(|rest| rest.iter().position(|&b| b == b'=')).map(|p| p + from) {
        from = eq + 1;
        let mut start = eq;
        while start > 0 && eq - start < 64 && is_param_char(before(text, start)) {
            start -= 1;
        }
        let name = text.get(start..eq).unwrap_or_default();
        let credential = CREDENTIAL_PARAMS.iter().any(|p| {
            name.len() >= p.len()
                && name.get(name.len() - p.len()..).is_some_and(|end| end.eq_ignore_ascii_case(p))
                // A whole word: `X-Amz-Signature`, not `monkey`.
                && (name.len() == p.len() || !at(name, name.len() - p.len() - 1).is_ascii_alphabetic())
        });
        if !credential {
            continue;
        }
        let mut end = eq + 1;
        while !ends_value(at(text, end)) {
            end += 1;
        }
        if end > eq + 1 {
            out.push((eq + 1, end));
            from = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn found(f: fn(&[u8], &mut Vec<(usize, usize)>), text: &str) -> Vec<String> {
        let mut out = Vec::new();
        f(text.as_bytes(), &mut out);
        out.iter().map(|&(s, e)| text[s..e].to_string()).collect()
    }

    #[test]
    fn ssns_follow_the_ssa_rules() {
        assert_eq!(found(find_ssns, "ssn 219-09-9999, 078-05-1120"), ["219-09-9999", "078-05-1120"]);
        assert_eq!(found(find_ssns, "536 90 4399"), ["536 90 4399"]);
        for invalid in ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123-45-67890", "2024-01-1234", "555-123-4567"] {
            assert!(found(find_ssns, invalid).is_empty(), "{invalid}");
        }
    }

    #[test]
    fn aws_secret_keys_need_their_format_and_a_sign() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(found(find_aws_secret_keys, &format!("x {key} y")), [key]);
        let no_slash = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12";
        assert_eq!(found(find_aws_secret_keys, &format!("aws_secret_access_key = {no_slash}")), [no_slash]);
        assert!(found(find_aws_secret_keys, &format!("commit {no_slash}")).is_empty(), "needs a name or a slash");
        assert!(found(find_aws_secret_keys, "da39a3ee5e6b4b0d3255bfef95601890afd80709").is_empty(), "hex digests are one case");
    }

    /// Every run of key characters measured, one after the other.
    fn aws_secret_keys_run_by_run(text: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            if !is_aws_secret_char(text[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < text.len() && is_aws_secret_char(text[i]) {
                i += 1;
            }
            if i - start == KEY_LEN && aws_secret_key_at(text, start, i) {
                out.push((start, i));
            }
        }
        out
    }

    #[test]
    fn aws_secret_keys_by_stride_are_those_of_every_run() {
        let key = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut next = filter_common::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut keys = 0;
        for _ in 0..3000 {
            let mut text = Vec::new();
            while text.len() < 300 {
                match next() % 6 {
                    0 => text.extend_from_slice(key),
                    1 => text.extend_from_slice(&key[..(next() % 40) as usize]),
                    2 => text.extend_from_slice(b"aws_secret = "),
                    3 => text.push(b" =-_/+aZ9"[(next() % 9) as usize]),
                    _ => text.extend((0..next() % 50).map(|_| b"ABCxyz019/+"[(next() % 11) as usize])),
                }
            }
            let mut found = Vec::new();
            find_aws_secret_keys(&text, &mut found);
            assert_eq!(found, aws_secret_keys_run_by_run(&text), "{}", String::from_utf8_lossy(&text));
            keys += found.len();
        }
        assert!(keys > 100, "{keys} keys in the generated texts");
    }

    #[test]
    fn pem_private_keys_to_their_end_or_the_text_end() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
        assert_eq!(found(find_private_keys, &format!("k: {pem} ok")), [pem]);
        assert_eq!(found(find_private_keys, "-----BEGIN PRIVATE KEY-----\nMIIE"), ["-----BEGIN PRIVATE KEY-----\nMIIE"]);
        assert!(found(find_private_keys, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----").is_empty());
    }

    #[test]
    fn provider_tokens_by_their_published_prefixes() {
        for token in [
            "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",
            "glpat-xxxxxxxxxxxxxxxxxxxx",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        ] {
            assert_eq!(found(find_provider_tokens, &format!("t={token}&x")), [token], "{token}");
        }
        assert!(found(find_provider_tokens, "sk_live_short ghp_tooShort x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").is_empty());
    }

    #[test]
    fn provider_tokens_by_stride_are_those_of_a_scan_of_the_whole_text() {
        let tokens: [&[u8]; 4] = [b"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", b"xoxb-1234567890", b"sk_live_4eC39HqLyjWDarjtT1zdp7dc", b"glpat-xxxxxxxxxxxxxxxxxxxx"];
        let mut next = filter_common::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        let mut found_any = 0;
        for _ in 0..3000 {
            let mut text = Vec::new();
            while text.len() < 200 {
                match next() % 5 {
                    0 => text.extend_from_slice(tokens[(next() % 4) as usize]),
                    1 => {
                        let t = tokens[(next() % 4) as usize];
                        text.extend_from_slice(&t[..(next() as usize % t.len())]);
                    }
                    2 => text.push(b" =&_-./x9"[(next() % 9) as usize]),
                    _ => text.extend((0..next() % 20).map(|_| b"abxS0_-./ "[(next() % 10) as usize])),
                }
            }
            let mut strided = Vec::new();
            find_provider_tokens(&text, &mut strided);
            let mut whole = Vec::new();
            provider_tokens_in(&text, 0, text.len(), &mut whole);
            assert_eq!(strided, whole, "{}", String::from_utf8_lossy(&text));
            found_any += whole.len();
        }
        assert!(found_any > 1000, "{found_any} tokens in the generated texts");
    }

    #[test]
    fn credential_parameters_in_text() {
        let url = "https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&x=1";
        assert_eq!(found(find_credential_params, url), ["AKIA%2F1", "abc123"]);
        assert_eq!(found(find_credential_params, "?sv=2020&sig=a%2Bb%3D&se=x"), ["a%2Bb%3D"]);
        assert!(found(find_credential_params, "monkey=1 sort=asc view=grid").is_empty());
    }
}
