//! Hostile requests from a fixed seed: raw HTTP/1.1 bytes with random or
//! adversarial paths, queries and header values (control bytes, invalid
//! UTF-8, encodings that normalise to other paths, router orders), and
//! bodies that break every reader the filters have (broken and deeply
//! nested JSON, huge numbers, multipart with wrong boundaries, broken form
//! escapes, a gzip label on garbage). Request `n` is a pure function of the
//! seed and `n`, so a failure names the request that caused it.

use crate::soak::backend::SOAK_ID;

/// xorshift64*: small, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len() as u64) as usize).copied().unwrap_or("")
    }

    /// `len` random bytes of a class.
    fn bytes(&mut self, len: usize, class: Bytes) -> Vec<u8> {
        (0..len)
            .map(|_| loop {
                let b = self.next_u64() as u8;
                let ok = match class {
                    Bytes::Visible => b > 0x20 && b != 0x7f,
                    Bytes::Ascii => (0x21..0x7f).contains(&b) && b != b'#',
                    Bytes::Field => b == b'\t' || (b >= 0x20 && b != 0x7f),
                    Bytes::Any => !matches!(b, b'\r' | b'\n' | 0),
                };
                if ok {
                    break b;
                }
            })
            .collect()
    }

    /// `len` random bytes, each written `%XX`.
    fn escaped(&mut self, len: usize) -> Vec<u8> {
        (0..len).flat_map(|_| format!("%{:02X}", self.next_u64() as u8).into_bytes()).collect()
    }
}

/// Classes of random bytes.
#[derive(Debug, Clone, Copy)]
enum Bytes {
    /// Printable ASCII and every byte above 0x7f (no space, no controls).
    Visible,
    /// Printable ASCII but `#`.
    Ascii,
    /// What a header value may hold (RFC 9110 field-vchar, obs-text, SP, HTAB).
    Field,
    /// Anything but CR, LF and NUL: control bytes too.
    Any,
}

/// Paths that normalise, or try to, somewhere else.
const TRICK_PATHS: [&str; 14] = [
    "/orders/../admin/users", "/orders/%2e%2e/admin", "/orders//..//admin", "/orders/%2F..%2Fadmin", "/orders\\..\\admin",
    "/orders;jsessionid=1", "/orders/%00", "/orders/%", "/orders/%zz", "/%6Frders/1", "/orders/\u{e9}", "/ORDERS/1",
    "/orders/1#frag", "*",
];

/// Longer than the 70 characters RFC 2046 allows a boundary.
const LONG_BOUNDARY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Bodies that break readers: a content type and the bytes.
fn hostile_body(rng: &mut Rng) -> (String, Vec<u8>) {
    let json = "application/json".to_string();
    match rng.below(12) {
        0 => {
            let len = rng.below(300) as usize;
            (json, rng.bytes(len, Bytes::Any))
        }
        1 => {
            let full = br#"{"user_id":"u-1","card":"4111 1111 1111 1111","items":[{"sku":"A","qty":2}]}"#;
            let cut = rng.below(full.len() as u64) as usize;
            (json, full.get(..cut).unwrap_or_default().to_vec())
        }
        2 => {
            let depth = 10 + rng.below(2000) as usize;
            (json, format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes())
        }
        3 => {
            let depth = 10 + rng.below(1000) as usize;
            (json, format!("{}\"x\"{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes())
        }
        4 => {
            let n = rng.pick(&["1e999999", "-1e-999999", "123456789012345678901234567890123456789012345678901234567890", "0.0000000000000000000000000001e-400", "4111111111111111", "-0", "1.", ".5", "01", "NaN", "Infinity", "1e", "--1"]);
            (json, format!(r#"{{"user_id":{n},"card":{n},"n":[{n},{n}]}}"#).into_bytes())
        }
        5 => {
            let mut body = br#"{"user_id":""#.to_vec();
            body.extend(rng.bytes(40, Bytes::Visible).into_iter().map(|b| if b == b'"' || b == b'\\' { 0xff } else { b }));
            body.extend_from_slice(br#"","card":"4111 1111 1111 1111"}"#);
            (json, body)
        }
        6 => {
            let declared = rng.pick(&["b1", "", "\"unterminated", LONG_BOUNDARY, "x y"]);
            let used = rng.pick(&["b2", "b1", "--", ""]);
            let body = format!("--{used}\r\ncontent-disposition: form-data; name=\"user_id\"\r\n\r\nu-1\r\n--{used}--\r\n");
            (format!("multipart/form-data; boundary={declared}"), body.into_bytes())
        }
        7 => ("multipart/form-data".to_string(), b"--x\r\n\r\n\r\n--x".to_vec()),
        8 => {
            let body = rng.pick(&["user_id=%zz&card=4111%201111%201111%201111", "=&&==&%", "a=%F0%28%8C%28", "password=%00%00", "x=%"]);
            ("application/x-www-form-urlencoded".to_string(), body.as_bytes().to_vec())
        }
        9 => ("application/json; charset=utf-16".to_string(), b"\xff\xfe{\x00}\x00".to_vec()),
        10 => (rng.pick(&["", "text/html", "application/", ";;", "application/json;;;x", "*/*"]).to_string(), br#"{"card":"4111 1111 1111 1111"}"#.to_vec()),
        _ => (json, format!(r#"{{"user_id":"u-1","d":{{"e":[{}]}}}}"#, "\"\\ud800\",".repeat(20) + "1").into_bytes()),
    }
}

/// What a hostile request is, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub mirrored: bool,
    pub post: bool,
}

/// Request number `n`: the raw bytes to send.
pub fn request(seed: u64, n: u64) -> (Shape, Vec<u8>) {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let post = rng.below(2) == 0;
    let mirrored = rng.below(4) != 0;
    let mut target: Vec<u8> = (if mirrored { if post { "/orders" } else { "/orders/1" } } else { "/catalog/items/1" }).as_bytes().to_vec();
    match rng.below(8) {
        0 => target = rng.pick(&TRICK_PATHS).as_bytes().to_vec(),
        1 => {
            target.push(b'/');
            let len = rng.below(60) as usize;
            target.extend(rng.bytes(len, Bytes::Visible));
        }
        2 => {
            target.push(b'/');
            let len = rng.below(30) as usize;
            target.extend(rng.escaped(len));
        }
        3..=5 => {
            target.push(b'?');
            for _ in 0..rng.below(6) {
                let len = rng.below(30) as usize;
                let part = if rng.below(2) == 0 { rng.escaped(len) } else { rng.bytes(len, Bytes::Ascii) };
                target.extend(part);
                target.push(if rng.below(2) == 0 { b'&' } else { b'=' });
            }
        }
        _ => {}
    }
    let method = if post { "POST" } else { rng.pick(&["GET", "GET", "DELETE", "OPTIONS", "PUT", "get", "G\u{e9}T"]) };
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend(target);
    head.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\n");
    head.extend_from_slice(format!("{SOAK_ID}: {n}\r\n").as_bytes());
    let header_names = ["user-agent", "cookie", "idempotency-key", "x-envoy-max-retries", "x-envoy-retry-on", "authorization", "x-route-destination", "x-forwarded-client-cert", "content-encoding", "x-custom"];
    for _ in 0..rng.below(6) {
        let name = rng.pick(&header_names);
        let len = rng.below(200) as usize;
        let class = if rng.below(8) == 0 { Bytes::Any } else { Bytes::Field };
        let mut value = rng.bytes(len, class);
        if name == "cookie" && rng.below(2) == 0 {
            value = [b"session=".as_slice(), &value].concat();
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend(value);
        head.extend_from_slice(b"\r\n");
    }
    let body = if post {
        let (content_type, body) = hostile_body(&mut rng);
        if !content_type.is_empty() {
            head.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
        }
        if rng.below(10) == 0 {
            head.extend_from_slice(b"content-encoding: gzip\r\n");
        }
        body
    } else {
        Vec::new()
    };
    if post {
        head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head.extend(body);
    (Shape { mirrored, post }, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        assert_eq!(request(7, 42), request(7, 42));
        assert_ne!(request(7, 42).1, request(7, 43).1);
    }

    #[test]
    fn every_request_has_a_number_and_a_head_end() {
        for n in 0..500 {
            let (_, bytes) = request(1, n);
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains(&format!("{SOAK_ID}: {n}\r\n")), "{text}");
            assert!(bytes.windows(4).any(|w| w == b"\r\n\r\n"));
        }
    }
}
