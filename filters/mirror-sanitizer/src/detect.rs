//! Value detectors: find secrets and personal data inside any text (a header
//! value, a query value, a JSON string, a form field) by their shape. Each
//! built-in detector is a hand-written scanner over bytes (cheap on large
//! bodies); user patterns are regexes. One table-driven pass over a text
//! (its `Profile`) decides which detectors can match it at all.

use crate::formats::{find_aws_secret_keys, find_credential_params, find_private_keys, find_provider_tokens, find_ssns};
use crate::text::{at, before};

/// The built-in detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// 13 to 19 digits, optionally grouped by single spaces or dashes,
    /// starting with 2 to 6 (the card networks' ranges), Luhn-valid.
    CardNumber,
    Email,
    /// Three base64url segments, the first starting `eyJ` (`{"`).
    Jwt,
    /// The token after `Bearer ` (any case).
    BearerToken,
    /// `AKIA`, `ASIA` and the other AWS id prefixes, then 16 upper-case letters or digits.
    AwsAccessKeyId,
    /// Country code, check digits and account, optionally grouped by spaces; mod-97 checked.
    Iban,
    /// `+` and 8 to 15 digits (E.164, separators allowed), or the North
    /// American shapes `(555) 123-4567`, `555-123-4567`, `555.123.4567`.
    Phone,
    /// US Social Security numbers `ddd-dd-dddd`, invalid areas excluded.
    Ssn,
    /// AWS secret access keys: 40 base64 characters by a name or a `/`.
    AwsSecretKey,
    /// PEM private key blocks.
    PrivateKey,
    /// Tokens of published formats (GitHub, GitLab, Slack, Stripe, Google, npm, …).
    ProviderToken,
    /// Values of credential parameters in text (signed-URL signatures, `token=`).
    CredentialParam,
}

/// Byte classes the detectors' quick checks need.
const DIGIT: u32 = 1;
const UPPER: u32 = 2;
const AT: u32 = 4;
const J: u32 = 8;
const DOT: u32 = 16;
const B: u32 = 32;
const SPACE: u32 = 64;
const EQ: u32 = 128;
const DASH: u32 = 256;
const UNDERSCORE: u32 = 512;
const LOWER: u32 = 1024;
/// Not in the base64 or base64url alphabets (nor `=`).
const NON_B64: u32 = 2048;
const OPEN: u32 = 4096;
/// Ends the plain run of a JSON string: `"`, `\\` or a control character.
pub const STRING_STOP: u32 = 8192;
const PERCENT: u32 = 16384;
const PLUS: u32 = 32768;
const SLASH: u32 = 65536;

// Evaluated at compile time: an index out of range would fail the build,
// never a request.
#[allow(clippy::indexing_slicing)]
const CLASSES: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let b64 = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_' || b == b'=';
        t[i] = if b.is_ascii_digit() { DIGIT } else if b.is_ascii_uppercase() { UPPER } else if b.is_ascii_lowercase() { LOWER } else { 0 }
            | if b == b'@' { AT } else { 0 }
            | if b == b'J' { J } else { 0 }
            | if b == b'.' { DOT } else { 0 }
            | if b == b'b' || b == b'B' { B } else { 0 }
            | if b == b' ' { SPACE } else { 0 }
            | if b == b'=' { EQ } else { 0 }
            | if b == b'-' { DASH } else { 0 }
            | if b == b'_' { UNDERSCORE } else { 0 }
            | if b == b'{' || b == b'[' { OPEN } else { 0 }
            | if b == b'%' { PERCENT } else { 0 }
            | if b == b'+' { PLUS } else { 0 }
            | if b == b'/' { SLASH } else { 0 }
            | if b64 { 0 } else { NON_B64 }
            | if b == b'"' || b == b'\\' || b < 0x20 { STRING_STOP } else { 0 };
        i += 1;
    }
    t
};

/// What a text holds, gathered in one table-driven pass, so detectors that
/// cannot match it are skipped without scanning.
pub struct Profile {
    classes: u32,
    digits: usize,
    uppers: usize,
    len: usize,
}

/// The class bits of a byte.
pub fn class_of(b: u8) -> u32 {
    CLASSES.get(usize::from(b)).copied().unwrap_or(0)
}

/// The bytes from `from` up to the first `"`, `\\` or control character (or
/// the end): that end, and the class bits of the bytes before it. Eight
/// bytes a step, as most of a document's bytes are plain string content.
pub fn plain_run(text: &[u8], from: usize) -> (usize, u32) {
    let mut i = from;
    let mut classes = 0;
    // Most strings are short (keys, ids): byte by byte first.
    while i < from + 8 {
        let Some(&b) = text.get(i) else { return (i, classes) };
        let c = class_of(b);
        if c & STRING_STOP != 0 {
            return (i, classes);
        }
        classes |= c;
        i += 1;
    }
    while let Some(chunk) = text.get(i..i + 8) {
        let Ok([a, b, c, d, e, f, g, h]) = <[u8; 8]>::try_from(chunk) else { break };
        let m = class_of(a) | class_of(b) | class_of(c) | class_of(d) | class_of(e) | class_of(f) | class_of(g) | class_of(h);
        if m & STRING_STOP != 0 {
            break;
        }
        classes |= m;
        i += 8;
    }
    while let Some(&b) = text.get(i) {
        let c = class_of(b);
        if c & STRING_STOP != 0 {
            break;
        }
        classes |= c;
        i += 1;
    }
    (i, classes)
}

/// Every check on a digit or capital count needs a text this long or longer.
const COUNTED_FROM: usize = 8;

impl Profile {
    pub fn of(text: &[u8]) -> Self {
        let classes = text.iter().fold(0, |m, &b| m | class_of(b));
        Self::from_classes(classes, text)
    }

    /// The profile of `text` whose bytes' class bits are `classes`: digits
    /// and capitals are counted only in a text long enough for a check on
    /// them (shorter, every such check fails whatever the count).
    pub fn from_classes(classes: u32, text: &[u8]) -> Self {
        let (mut digits, mut uppers) = (0, 0);
        if text.len() >= COUNTED_FROM && classes & (DIGIT | UPPER) != 0 {
            for &b in text {
                digits += usize::from(b.is_ascii_digit());
                uppers += usize::from(b.is_ascii_uppercase());
            }
        }
        Profile { classes, digits, uppers, len: text.len() }
    }

    /// The built-in detectors (their `Builtin::bit`s) that may match the
    /// text.
    pub fn possible(&self) -> u16 {
        if self.len < SHORTEST_MATCH {
            return 0;
        }
        Builtin::ALL.iter().fold(0, |m, &b| if b.may_match(self) { m | b.bit() } else { m })
    }

    /// Could hold a nested document (JSON, pairs, percent-encoding, base64).
    pub fn maybe_document(&self) -> bool {
        self.has(OPEN | EQ | PERCENT) || self.maybe_base64()
    }

    fn has(&self, class: u32) -> bool {
        self.classes & class != 0
    }

    /// Could be base64 or base64url text (a nested document's encoding).
    pub fn maybe_base64(&self) -> bool {
        !self.has(NON_B64) && self.len >= 16
    }

    /// Holds `=` (a form or query string, or a credential parameter).
    pub fn has_equals(&self) -> bool {
        self.has(EQ)
    }

    /// Holds `%` (percent-encoded text).
    pub fn has_percent(&self) -> bool {
        self.has(PERCENT)
    }

    /// Holds `-` or `_` (base64url rather than base64).
    pub fn has_url_signs(&self) -> bool {
        self.has(DASH | UNDERSCORE)
    }

    /// Holds `+` or `/` (base64 rather than base64url).
    pub fn has_standard_signs(&self) -> bool {
        self.has(PLUS | SLASH)
    }

    /// Holds `{` or `[` (a JSON document).
    pub fn has_open(&self) -> bool {
        self.has(OPEN)
    }
}

/// Shorter texts hold no match of any built-in detector (`a@b.io` is 6).
pub const SHORTEST_MATCH: usize = 6;

impl Builtin {
    /// False when the text cannot hold a match (cheap, conservative).
    pub fn may_match(self, p: &Profile) -> bool {
        match self {
            Builtin::CardNumber => p.digits >= 13,
            Builtin::Email => p.has(AT) && p.has(DOT),
            // `eyJa.bc.` is the shortest.
            Builtin::Jwt => p.has(J) && p.has(DOT) && p.len >= 8,
            Builtin::BearerToken => p.has(B) && p.has(SPACE),
            Builtin::AwsAccessKeyId => p.uppers >= 4 && p.len >= 20,
            Builtin::Iban => p.uppers >= 2 && p.digits >= 2 && p.len >= 15,
            // E.164 starts with `+`; every North American shape has `-` or `.`.
            Builtin::Phone => p.digits >= 8 && p.has(PLUS | DASH | DOT),
            Builtin::Ssn => p.digits >= 9 && (p.has(DASH) || p.has(SPACE)),
            Builtin::AwsSecretKey => p.len >= 40 && p.has(UPPER) && p.has(LOWER),
            Builtin::PrivateKey => p.has(DASH) && p.uppers >= 14,
            // Every published prefix has a separator or two capitals.
            Builtin::ProviderToken => p.len >= 13 && (p.has(UNDERSCORE) || p.has(DASH) || p.has(DOT) || p.uppers >= 2),
            Builtin::CredentialParam => p.has(EQ),
        }
    }

    /// This detector's bit in a `Profile::possible` mask.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    pub const ALL: [Builtin; 12] = [
        Builtin::CardNumber,
        Builtin::Email,
        Builtin::Jwt,
        Builtin::BearerToken,
        Builtin::AwsAccessKeyId,
        Builtin::Iban,
        Builtin::Phone,
        Builtin::Ssn,
        Builtin::AwsSecretKey,
        Builtin::PrivateKey,
        Builtin::ProviderToken,
        Builtin::CredentialParam,
    ];

    /// Appends the byte ranges of `text` this detector matches.
    pub fn find(self, text: &[u8], out: &mut Vec<(usize, usize)>) {
        match self {
            Builtin::CardNumber => find_cards(text, out),
            Builtin::Email => find_emails(text, out),
            Builtin::Jwt => find_jwts(text, out),
            Builtin::BearerToken => find_bearer(text, out),
            Builtin::AwsAccessKeyId => find_aws(text, out),
            Builtin::Iban => find_ibans(text, out),
            Builtin::Phone => find_phones(text, out),
            Builtin::Ssn => find_ssns(text, out),
            Builtin::AwsSecretKey => find_aws_secret_keys(text, out),
            Builtin::PrivateKey => find_private_keys(text, out),
            Builtin::ProviderToken => find_provider_tokens(text, out),
            Builtin::CredentialParam => find_credential_params(text, out),
        }
    }
}

/// A detector the configuration enabled.
#[derive(Debug, Clone)]
pub enum Detector {
    Builtin(Builtin),
    Pattern(regex_lite::Regex),
}

impl Detector {
    pub fn find(&self, text: &str, out: &mut Vec<(usize, usize)>) {
        match self {
            Detector::Builtin(b) => b.find(text.as_bytes(), out),
            Detector::Pattern(re) => out.extend(re.find_iter(text).filter(|m| !m.is_empty()).map(|m| (m.start(), m.end()))),
        }
    }
}

/// A match: its byte range and the index of the rule whose detector found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
}

/// Every match in `text` of the detectors, `(detector, rule)` in rule
/// order; where matches overlap the earliest (then longest) wins.
pub fn scan(text: &str, detectors: &[(Detector, usize)]) -> Vec<Span> {
    scan_profiled(text, &Profile::of(text.as_bytes()), detectors)
}

/// `scan`, with the text's profile already taken.
pub fn scan_profiled(text: &str, profile: &Profile, detectors: &[(Detector, usize)]) -> Vec<Span> {
    let mut spans = Vec::new();
    scan_into(text, profile.possible(), detectors, &mut Vec::new(), &mut spans);
    spans
}

/// `scan` into `spans` (cleared first), running only the built-in
/// detectors of the `possible` mask, with `found` as scratch: buffers a
/// caller keeps from one text to the next. A built-in listed again for a
/// later rule runs once: its matches would be the same, and the earlier
/// rule's win.
pub fn scan_into(text: &str, possible: u16, detectors: &[(Detector, usize)], found: &mut Vec<(usize, usize)>, spans: &mut Vec<Span>) {
    spans.clear();
    let mut ran = 0u16;
    for (detector, rule) in detectors {
        if let Detector::Builtin(b) = detector {
            if possible & b.bit() == 0 || ran & b.bit() != 0 {
                continue;
            }
            ran |= b.bit();
        }
        found.clear();
        detector.find(text, found);
        spans.extend(found.iter().map(|&(start, end)| Span { start, end, rule: *rule }));
    }
    if spans.len() > 1 {
        spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(a.rule.cmp(&b.rule)));
        let mut kept_end: Option<usize> = None;
        spans.retain(|s| {
            let keep = kept_end.is_none_or(|end| s.start >= end);
            if keep {
                kept_end = Some(s.end);
            }
            keep
        });
    }
}


fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Whether groups ending as `ends` says (digits so far at each end) are
/// written as card numbers are printed: one group, or groups of 3 to 6
/// digits (4-4-4-4, 4-6-5, 4-4-4-4-3). A UUID's leading 8-4-4 is not one,
/// so a request id whose first groups are all digits is not a card.
fn printed_groups(ends: &[(usize, usize)]) -> bool {
    ends.len() == 1 || ends.iter().scan(0, |prev, &(_, n)| Some(n - std::mem::replace(prev, n))).all(|len| (3..=6).contains(&len))
}

fn find_cards(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < text.len() {
        if !at(text, i).is_ascii_digit() || before(text, i).is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        // The run of digits with single separators, and where each group
        // ends; fixed arrays, as this runs on every long digit run.
        let mut digits = [0u8; 41];
        let mut n_digits = 0;
        let mut ends = [(0usize, 0usize); 42]; // (byte end, digits so far)
        let mut n_ends = 0;
        let mut j = i;
        loop {
            let b = at(text, j);
            if b.is_ascii_digit() {
                if let Some(d) = digits.get_mut(n_digits) {
                    *d = b;
                }
                n_digits += 1;
                j += 1;
            } else if (b == b' ' || b == b'-') && at(text, j + 1).is_ascii_digit() && n_digits > 0 {
                if let Some(e) = ends.get_mut(n_ends) {
                    *e = (j, n_digits);
                    n_ends += 1;
                }
                j += 1;
            } else {
                break;
            }
            if n_digits >= digits.len() {
                break;
            }
        }
        if let Some(e) = ends.get_mut(n_ends) {
            *e = (j, n_digits);
            n_ends += 1;
        }
        let run_end = j;
        let mut matched = None;
        // Longest first: the run whole if it ends at a boundary, else a
        // prefix that ends at a group boundary.
        let ends = ends.get(..n_ends).unwrap_or_default();
        for (k, &(end, n)) in ends.iter().enumerate().rev() {
            let boundary = !at(text, end).is_ascii_alphanumeric();
            if boundary
                && (13..=19).contains(&n)
                && printed_groups(ends.get(..=k).unwrap_or_default())
                && (b'2'..=b'6').contains(&at(&digits, 0))
                && digits.get(..n).is_some_and(luhn)
            {
                matched = Some(end);
                break;
            }
        }
        match matched {
            Some(end) => {
                out.push((i, end));
                i = end;
            }
            None => i = run_end.max(i + 1),
        }
    }
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn find_emails(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    let mut i = 0;
    while i < text.len() {
        match text.get(i..).and_then(|rest| rest.iter().position(|&b| b == b'@')) {
            Some(off) => i += off,
            None => return,
        }
        let mut start = i;
        while start > from && is_local_char(before(text, start)) {
            start -= 1;
        }
        while start < i && at(text, start) == b'.' {
            start += 1;
        }
        // Domain: labels of letters, digits and dashes, at least two, the
        // last (the TLD) all letters and two or more long.
        let mut j = i + 1;
        let mut last_label_start = j;
        let mut labels = 0;
        let mut end = None;
        loop {
            let label_start = j;
            while at(text, j).is_ascii_alphanumeric() || at(text, j) == b'-' {
                j += 1;
            }
            if j == label_start {
                break;
            }
            labels += 1;
            last_label_start = label_start;
            let tld = text.get(label_start..j).unwrap_or_default();
            if labels >= 2 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
                end = Some(j);
            }
            if at(text, j) == b'.' && at(text, j + 1).is_ascii_alphanumeric() {
                j += 1;
            } else {
                break;
            }
        }
        let _ = last_label_start;
        match end {
            Some(end) if start < i => {
                out.push((start, end));
                from = end;
                i = end;
            }
            _ => i += 1,
        }
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn find_jwts(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i + 3 <= text.len() {
        if text.get(i..i + 3) != Some(b"eyJ") || is_b64url(before(text, i)) {
            i += 1;
            continue;
        }
        let segment = |mut j: usize| {
            let s = j;
            while is_b64url(at(text, j)) {
                j += 1;
            }
            (j, j - s)
        };
        let (j1, n1) = segment(i);
        let ok = n1 >= 4 && at(text, j1) == b'.';
        let (j2, n2) = if ok { segment(j1 + 1) } else { (j1, 0) };
        if ok && n2 >= 2 && at(text, j2) == b'.' {
            let (j3, _) = segment(j2 + 1);
            out.push((i, j3));
            i = j3;
        } else {
            i = j1.max(i + 1);
        }
    }
}

fn is_b64token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

fn find_bearer(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i + 7 <= text.len() {
        // Jump to the next `b` or `B`.
        match text.get(i..).and_then(|rest| rest.iter().position(|&b| b | 0x20 == b'b')) {
            Some(off) => i += off,
            None => return,
        }
        let word = text.get(i..i + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"));
        if !word || before(text, i).is_ascii_alphanumeric() || at(text, i + 6) != b' ' {
            i += 1;
            continue;
        }
        let mut start = i + 6;
        while at(text, start) == b' ' {
            start += 1;
        }
        let mut end = start;
        while is_b64token(at(text, end)) {
            end += 1;
        }
        if end > start {
            out.push((start, end));
        }
        i = end.max(i + 1);
    }
}

const AWS_PREFIXES: [&[u8]; 10] = [b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA", b"ANVA", b"AIPA", b"ABIA", b"ACCA"];

fn find_aws(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i + 20 <= text.len() {
        let prefix = text.get(i..i + 4).is_some_and(|p| AWS_PREFIXES.contains(&p));
        let body = text.get(i + 4..i + 20).is_some_and(|b| b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        if prefix && body && !before(text, i).is_ascii_alphanumeric() && !at(text, i + 20).is_ascii_alphanumeric() {
            out.push((i, i + 20));
            i += 20;
        } else {
            i += 1;
        }
    }
}

fn iban_valid(chars: &[u8]) -> bool {
    if !(15..=34).contains(&chars.len()) {
        return false;
    }
    let (head, rest) = chars.split_at(4);
    let mut remainder = 0u32;
    for &c in rest.iter().chain(head) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        remainder = if v >= 10 { (remainder * 100 + v) % 97 } else { (remainder * 10 + v) % 97 };
    }
    remainder == 1
}

fn find_ibans(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i + 15 <= text.len() {
        let start_ok = at(text, i).is_ascii_uppercase()
            && at(text, i + 1).is_ascii_uppercase()
            && at(text, i + 2).is_ascii_digit()
            && at(text, i + 3).is_ascii_digit()
            && !before(text, i).is_ascii_alphanumeric();
        if !start_ok {
            i += 1;
            continue;
        }
        let mut chars = Vec::with_capacity(34);
        let mut ends: Vec<(usize, usize)> = Vec::new();
        let mut j = i;
        loop {
            let b = at(text, j);
            if b.is_ascii_uppercase() || b.is_ascii_digit() {
                chars.push(b);
                j += 1;
            } else if b == b' ' && (at(text, j + 1).is_ascii_uppercase() || at(text, j + 1).is_ascii_digit()) {
                ends.push((j, chars.len()));
                j += 1;
            } else {
                break;
            }
            if chars.len() > 34 {
                break;
            }
        }
        ends.push((j, chars.len()));
        let found = ends.iter().rev().find(|&&(end, n)| {
            !at(text, end).is_ascii_alphanumeric() && chars.get(..n).is_some_and(iban_valid)
        });
        match found {
            Some(&(end, _)) => {
                out.push((i, end));
                i = end;
            }
            None => i += 1,
        }
    }
}

/// Matches `shape` at `i`: `d` a digit, any other byte itself.
fn shape_at(text: &[u8], i: usize, shape: &[u8]) -> bool {
    shape.iter().enumerate().all(|(k, &s)| {
        let b = at(text, i + k);
        if s == b'd' {
            b.is_ascii_digit()
        } else {
            b == s
        }
    })
}

fn is_phone_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

const NANP_SHAPES: [&[u8]; 4] = [b"(ddd) ddd-dddd", b"ddd-ddd-dddd", b"ddd.ddd.dddd", b"(ddd)ddd-dddd"];

fn find_phones(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < text.len() {
        let b = at(text, i);
        let boundary = !before(text, i).is_ascii_alphanumeric() && before(text, i) != b'+';
        if b == b'+' && boundary && (b'1'..=b'9').contains(&at(text, i + 1)) {
            // E.164: digits with single separators.
            let mut j = i + 1;
            let mut digits = 0;
            let mut end = j;
            loop {
                let c = at(text, j);
                if c.is_ascii_digit() {
                    digits += 1;
                    j += 1;
                    end = j;
                } else if is_phone_separator(c) {
                    // Up to two separators in a row: `) ` in `+1 (555) 123`.
                    let mut k = j;
                    while k < j + 2 && is_phone_separator(at(text, k)) {
                        k += 1;
                    }
                    if !at(text, k).is_ascii_digit() {
                        break;
                    }
                    j = k;
                } else {
                    break;
                }
                if digits > 15 {
                    break;
                }
            }
            if (8..=15).contains(&digits) && !at(text, end).is_ascii_alphanumeric() {
                out.push((i, end));
                i = end;
                continue;
            }
            i += 1;
            continue;
        }
        if (b.is_ascii_digit() || b == b'(') && boundary {
            if let Some(shape) = NANP_SHAPES.iter().find(|s| shape_at(text, i, s)) {
                let end = i + shape.len();
                if !at(text, end).is_ascii_alphanumeric() {
                    out.push((i, end));
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn found(d: Builtin, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        d.find(text.as_bytes(), &mut out);
        out.iter().map(|&(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn cards_are_luhn_checked_with_spaces_or_dashes() {
        assert_eq!(found(Builtin::CardNumber, "card 4111111111111111 ok"), ["4111111111111111"]);
        assert_eq!(found(Builtin::CardNumber, "4111 1111 1111 1111"), ["4111 1111 1111 1111"]);
        assert_eq!(found(Builtin::CardNumber, "x:5500-0000-0000-0004,"), ["5500-0000-0000-0004"]);
        assert_eq!(found(Builtin::CardNumber, "amex 378282246310005"), ["378282246310005"]);
        // Luhn fails: one digit changed.
        assert!(found(Builtin::CardNumber, "4111111111111112").is_empty());
        // A millisecond timestamp (starts with 1) and a long id are not cards.
        assert!(found(Builtin::CardNumber, "1700000000000 and 41111111111111111111111").is_empty());
        // Part of a word or number is not a card.
        assert!(found(Builtin::CardNumber, "id4111111111111111").is_empty());
        // A year after the card is not absorbed.
        assert_eq!(found(Builtin::CardNumber, "4111-1111-1111-1111 2029"), ["4111-1111-1111-1111"]);
        assert!(found(Builtin::CardNumber, "4111  1111 1111 1111").is_empty(), "double space splits the run");
        assert_eq!(found(Builtin::CardNumber, "amex 3782 822463 10005."), ["3782 822463 10005"]);
        assert!(found(Builtin::CardNumber, "41111111 11111111").is_empty(), "no card is printed in groups of 8");
    }

    #[test]
    fn request_ids_are_not_cards() {
        // Version-4 UUIDs (Envoy's x-request-id) from a fixed generator. The
        // control: those whose leading 8-4-4 digits make a card when
        // regrouped 4-4-4-4 are found so, and are many.
        let mut next = filter_common::test_rng::xorshift(0x9E37_79B9_7F4A_7C15);
        let (mut cardlike, mut found_in_ids) = (0, Vec::new());
        for _ in 0..300_000 {
            let mut id = String::new();
            for (group, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
                if group > 0 {
                    id.push('-');
                }
                for k in 0..len {
                    let c = match (group, k) {
                        (2, 0) => '4',
                        (3, 0) => b"89ab"[(next() % 4) as usize] as char,
                        _ => b"0123456789abcdef"[(next() % 16) as usize] as char,
                    };
                    id.push(c);
                }
            }
            let lead: String = id[..18].chars().filter(|c| *c != '-').collect();
            if lead.bytes().all(|b| b.is_ascii_digit()) {
                let regrouped = format!("{} {} {} {}", &lead[..4], &lead[4..8], &lead[8..12], &lead[12..]);
                if found(Builtin::CardNumber, &regrouped).len() == 1 {
                    cardlike += 1;
                }
            }
            if !found(Builtin::CardNumber, &id).is_empty() {
                found_in_ids.push(id);
            }
        }
        assert!(cardlike >= 5, "the control found {cardlike} card-like ids");
        assert_eq!(found_in_ids, Vec::<String>::new());
    }

    #[test]
    fn emails() {
        assert_eq!(found(Builtin::Email, "to: Jane.Doe+x@mail.example.com, bob@ex.io"), ["Jane.Doe+x@mail.example.com", "bob@ex.io"]);
        assert!(found(Builtin::Email, "user@localhost a@b.c @x.com").is_empty());
        assert_eq!(found(Builtin::Email, "<alice@example.org>"), ["alice@example.org"]);
    }

    #[test]
    fn jwts_and_bearer_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl";
        assert_eq!(found(Builtin::Jwt, &format!("token={jwt}&x=1")), [jwt]);
        assert_eq!(found(Builtin::Jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."), ["eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."]);
        assert!(found(Builtin::Jwt, "eyJ.x").is_empty());
        assert_eq!(found(Builtin::BearerToken, "Bearer abc.DEF-123_~+/="), ["abc.DEF-123_~+/="]);
        assert_eq!(found(Builtin::BearerToken, "auth: bearer  tok"), ["tok"]);
        assert!(found(Builtin::BearerToken, "forbearer x").is_empty());
    }

    #[test]
    fn aws_ibans_phones() {
        assert_eq!(found(Builtin::AwsAccessKeyId, "key AKIAIOSFODNN7EXAMPLE."), ["AKIAIOSFODNN7EXAMPLE"]);
        assert!(found(Builtin::AwsAccessKeyId, "AKIAIOSFODNN7EXAMPLEX").is_empty());
        assert_eq!(found(Builtin::Iban, "iban DE89370400440532013000 x"), ["DE89370400440532013000"]);
        assert_eq!(found(Builtin::Iban, "GB82 WEST 1234 5698 7654 32"), ["GB82 WEST 1234 5698 7654 32"]);
        assert!(found(Builtin::Iban, "DE89370400440532013001").is_empty(), "mod 97 fails");
        assert_eq!(found(Builtin::Phone, "call +1 (555) 123-4567 now"), ["+1 (555) 123-4567"]);
        assert_eq!(found(Builtin::Phone, "+44 20 7946 0958"), ["+44 20 7946 0958"]);
        assert_eq!(found(Builtin::Phone, "(555) 123-4567; 555.123.4567"), ["(555) 123-4567", "555.123.4567"]);
        assert!(found(Builtin::Phone, "v1.2.3 2024-01-15 +123").is_empty());
    }

    #[test]
    fn a_profile_never_rules_out_a_text_its_detector_matches() {
        let samples = [
            "card 4111111111111111 ok", "4111 1111 1111 1111", "x:5500-0000-0000-0004,", "to: Jane.Doe+x@mail.example.com", "<alice@example.org>",
            "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl&x=1", "auth: bearer  tok", "key AKIAIOSFODNN7EXAMPLE.",
            "iban DE89370400440532013000 x", "GB82 WEST 1234 5698 7654 32", "call +1 (555) 123-4567 now", "+44 20 7946 0958", "(555) 123-4567; 555.123.4567",
            "555-123-4567", "ssn 219-09-9999, 078-05-1120", "536 90 4399", "x wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY y",
            "aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "t=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&x", "glpat-xxxxxxxxxxxxxxxxxxxx", "eyJa.bc.", "k wJalrXUtnFEMI/KxMDENG/bPxRfiCYEXAMPLEKEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&x=1", "?sv=2020&sig=a%2Bb%3D&se=x",
        ];
        let mut matched = 0;
        for b in Builtin::ALL {
            for text in samples {
                let direct = found(b, text);
                let spans = scan(text, &[(Detector::Builtin(b), 0)]);
                let scanned: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
                assert_eq!(scanned, direct, "{b:?} on {text:?}");
                matched += usize::from(!direct.is_empty());
            }
        }
        assert!(matched >= samples.len(), "the samples hold matches of every detector");
    }

    #[test]
    fn overlapping_matches_keep_the_earliest_longest() {
        let detectors: Vec<(Detector, usize)> = Builtin::ALL.iter().map(|&b| (Detector::Builtin(b), 0)).collect();
        let text = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig and 4111111111111111";
        let spans = scan(text, &detectors);
        let got: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "4111111111111111"]);
        let re = Detector::Pattern(regex_lite::Regex::new("EMP-[0-9]{6}").unwrap());
        assert_eq!(scan("id EMP-123456", &[(re, 3)]), [Span { start: 3, end: 13, rule: 3 }]);
    }
}
