//! gRPC's length-prefixed message framing in a shadow copy. A gRPC request
//! body is a sequence of messages, each a flag byte (1: compressed), a
//! 4-byte big-endian length and that many bytes of protobuf, arriving in
//! DATA frames cut anywhere. Protobuf is unreadable without its schema, so
//! each message is dropped from the copy, but its frame is kept as an empty
//! message: the shadow service still gets a well-formed call (every field
//! at its default) and as many messages as the client sent, in a stream too.

/// Length of a message's prefix: the flag byte and the length.
pub const PREFIX: usize = 5;

/// An empty, uncompressed message, as the copy carries each one.
pub const EMPTY_MESSAGE: [u8; PREFIX] = [0; PREFIX];

/// Where the reader stands between chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// Inside a prefix: the bytes of it seen so far.
    Prefix { seen: [u8; PREFIX], got: usize },
    /// Inside a message: the bytes of it still to skip.
    Message { left: u64 },
}

/// Reads the framing chunk by chunk, keeping only what it must: a message
/// is skipped as it streams by, never held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reframer {
    position: Position,
    /// Messages seen so far.
    pub messages: u64,
}

impl Default for Reframer {
    fn default() -> Self {
        Self { position: Position::Prefix { seen: [0; PREFIX], got: 0 }, messages: 0 }
    }
}

impl Reframer {
    /// The copy's bytes for this chunk: one empty message for each message
    /// whose prefix ends in it.
    pub fn chunk(&mut self, mut bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Message { left } => {
                    let skip = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    *left -= skip as u64;
                    bytes = bytes.get(skip..).unwrap_or_default();
                    if *left == 0 {
                        self.position = Position::Prefix { seen: [0; PREFIX], got: 0 };
                    }
                }
                Position::Prefix { seen, got } => {
                    let take = (PREFIX - *got).min(bytes.len());
                    if let (Some(to), Some(from)) = (seen.get_mut(*got..*got + take), bytes.get(..take)) {
                        to.copy_from_slice(from);
                    }
                    *got += take;
                    bytes = bytes.get(take..).unwrap_or_default();
                    if *got == PREFIX {
                        let [_, a, b, c, d] = *seen;
                        let left = u64::from(u32::from_be_bytes([a, b, c, d]));
                        self.messages += 1;
                        out.extend_from_slice(&EMPTY_MESSAGE);
                        self.position = if left == 0 { Position::Prefix { seen: [0; PREFIX], got: 0 } } else { Position::Message { left } };
                    }
                }
            }
        }
        out
    }

    /// True when the body so far ends on a message boundary (a body cut
    /// inside a message is malformed; the copy then carries only whole
    /// empty messages, which is still well-formed).
    pub fn at_boundary(&self) -> bool {
        matches!(self.position, Position::Prefix { got: 0, .. })
    }
}

/// True for the content types gRPC uses (`application/grpc`,
/// `application/grpc+proto`, `application/grpc+json`, …); gRPC-Web is another
/// framing and not included.
pub fn is_grpc(content_type: Option<&str>) -> bool {
    let essence = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/grpc" || essence.starts_with("application/grpc+")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn message(flag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![flag];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn each_message_becomes_an_empty_one() {
        let body = [message(0, b"\x0a\x05alice"), message(1, b"compressed"), message(0, b"")].concat();
        let mut r = Reframer::default();
        assert_eq!(r.chunk(&body), [EMPTY_MESSAGE; 3].concat());
        assert_eq!(r.messages, 3);
        assert!(r.at_boundary());
    }

    #[test]
    fn chunks_cut_anywhere_give_the_same_copy() {
        let body = [message(0, &[7; 300]), message(0, b"\x0a\x03bob"), message(0, &[1; 70_000])].concat();
        for cut in [1, 2, 4, 5, 6, 299, 1000, 16_384] {
            let mut r = Reframer::default();
            let out: Vec<u8> = body.chunks(cut).flat_map(|c| r.chunk(c)).collect();
            assert_eq!(out, [EMPTY_MESSAGE; 3].concat(), "chunks of {cut}");
            assert!(r.at_boundary(), "chunks of {cut}");
        }
    }

    #[test]
    fn no_byte_of_a_message_reaches_the_copy() {
        let secret = b"\x0a\x10card=4111111111111111";
        let mut r = Reframer::default();
        let out = r.chunk(&message(0, secret));
        assert!(!out.windows(4).any(|w| w == b"4111"));
    }

    #[test]
    fn a_body_cut_inside_a_message_is_not_at_a_boundary() {
        let mut r = Reframer::default();
        assert_eq!(r.chunk(&message(0, b"abcdef")[..8]), EMPTY_MESSAGE);
        assert!(!r.at_boundary());
        let mut r = Reframer::default();
        assert!(r.chunk(&[0, 0, 0]).is_empty(), "half a prefix");
        assert!(!r.at_boundary());
        assert!(Reframer::default().at_boundary(), "an empty body");
    }

    #[test]
    fn grpc_content_types() {
        for t in ["application/grpc", "application/grpc+proto", "Application/GRPC; charset=x", "application/grpc+json"] {
            assert!(is_grpc(Some(t)), "{t}");
        }
        for t in ["application/grpc-web", "application/grpc-web+proto", "application/json", ""] {
            assert!(!is_grpc(Some(t)), "{t}");
        }
        assert!(!is_grpc(None));
    }
}
