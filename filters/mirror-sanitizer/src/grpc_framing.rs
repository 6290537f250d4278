//! gRPC's length-prefixed message framing in a shadow copy. A gRPC request
//! body is a sequence of messages, each a flag byte (1: compressed), a
//! 4-byte big-endian length and that many bytes of protobuf, arriving in
//! DATA frames cut anywhere. Protobuf is unreadable without its schema, so
//! by default each message is dropped from the copy, but its frame is kept
//! as an empty message: the shadow service still gets a well-formed call
//! (every field at its default) and as many messages as the client sent,
//! in a stream too. Given the call's message type (a descriptor set in the
//! config), each uncompressed message up to the limit is held whole,
//! rewritten by the caller, and framed again with its new length; one that
//! cannot be rewritten is dropped as before.

/// Length of a message's prefix: the flag byte and the length.
pub const PREFIX: usize = 5;

/// An empty, uncompressed message, as the copy carries a dropped one.
pub const EMPTY_MESSAGE: [u8; PREFIX] = [0; PREFIX];

/// Where the reader stands between chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// Inside a prefix: the bytes of it seen so far.
    Prefix { seen: [u8; PREFIX], got: usize },
    /// Inside a message dropped as it streams by: the bytes still to skip.
    Skipping { left: u64 },
    /// Inside a message held for rewriting: its bytes so far, and its length.
    Holding { held: Vec<u8>, length: usize },
}

const START: Position = Position::Prefix { seen: [0; PREFIX], got: 0 };

/// Reads the framing chunk by chunk, keeping only what it must: a dropped
/// message is skipped as it streams by, never held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reframer {
    position: Position,
    /// Messages longer than this are dropped; `None`: every message is.
    hold_up_to: Option<usize>,
    /// Messages seen so far.
    pub messages: u64,
    /// Of those, messages passed on empty.
    pub dropped: u64,
}

impl Default for Reframer {
    fn default() -> Self {
        Self { position: START, hold_up_to: None, messages: 0, dropped: 0 }
    }
}

impl Reframer {
    /// A reframer that holds uncompressed messages up to `limit` bytes for
    /// rewriting.
    pub fn rewriting(limit: usize) -> Self {
        Self { hold_up_to: Some(limit), ..Self::default() }
    }

    /// The copy's bytes for this chunk: for each message whose prefix ends
    /// in it and that is dropped, an empty message; for each held message
    /// that ends in it, what `rewrite` makes of it (`None`: dropped).
    pub fn chunk(&mut self, mut bytes: &[u8], rewrite: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Skipping { left } => {
                    let skip = usize::try_from(*left).unwrap_or(usize::MAX).min(bytes.len());
                    *left -= skip as u64;
                    bytes = bytes.get(skip..).unwrap_or_default();
                    if *left == 0 {
                        self.position = START;
                    }
                }
                Position::Holding { held, length } => {
                    let take = (*length - held.len()).min(bytes.len());
                    held.extend_from_slice(bytes.get(..take).unwrap_or_default());
                    bytes = bytes.get(take..).unwrap_or_default();
                    if held.len() == *length {
                        let message = std::mem::take(held);
                        self.position = START;
                        self.emit(&message, rewrite, &mut out);
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
                        let [flag, a, b, c, d] = *seen;
                        let length = u32::from_be_bytes([a, b, c, d]);
                        self.messages += 1;
                        let holdable = usize::try_from(length).ok().filter(|&n| flag == 0 && self.hold_up_to.is_some_and(|limit| n <= limit));
                        self.position = match holdable {
                            Some(0) => {
                                self.emit(&[], rewrite, &mut out);
                                START
                            }
                            Some(length) => Position::Holding { held: Vec::with_capacity(length), length },
                            None => {
                                self.dropped += 1;
                                out.extend_from_slice(&EMPTY_MESSAGE);
                                if length == 0 { START } else { Position::Skipping { left: u64::from(length) } }
                            }
                        };
                    }
                }
            }
        }
        out
    }

    fn emit(&mut self, message: &[u8], rewrite: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>, out: &mut Vec<u8>) {
        match rewrite(message).and_then(|m| u32::try_from(m.len()).ok().map(|n| (m, n))) {
            Some((m, n)) => {
                out.push(0);
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&m);
            }
            None => {
                self.dropped += 1;
                out.extend_from_slice(&EMPTY_MESSAGE);
            }
        }
    }

    /// True when the body so far ends on a message boundary (a body cut
    /// inside a message is malformed; the copy then carries only whole
    /// messages, which is still well-formed).
    pub fn at_boundary(&self) -> bool {
        self.position == START
    }
}

/// True for the content types gRPC uses (`application/grpc`,
/// `application/grpc+proto`, `application/grpc+json`, …); gRPC-Web is another
/// framing and not included.
pub fn is_grpc(content_type: Option<&str>) -> bool {
    let essence = essence(content_type);
    essence == "application/grpc" || essence.starts_with("application/grpc+")
}

/// True where the messages are protobuf (`application/grpc`, `+proto`),
/// not another codec's (`+json`).
pub fn is_protobuf(content_type: Option<&str>) -> bool {
    matches!(essence(content_type).as_str(), "application/grpc" | "application/grpc+proto")
}

fn essence(content_type: Option<&str>) -> String {
    content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn drop_all(_: &[u8]) -> Option<Vec<u8>> {
        None
    }

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
        assert_eq!(r.chunk(&body, &mut drop_all), [EMPTY_MESSAGE; 3].concat());
        assert_eq!(r.messages, 3);
        assert!(r.at_boundary());
    }

    #[test]
    fn chunks_cut_anywhere_give_the_same_copy() {
        let body = [message(0, &[7; 300]), message(0, b"\x0a\x03bob"), message(0, &[1; 70_000])].concat();
        for cut in [1, 2, 4, 5, 6, 299, 1000, 16_384] {
            let mut r = Reframer::default();
            let out: Vec<u8> = body.chunks(cut).flat_map(|c| r.chunk(c, &mut drop_all)).collect();
            assert_eq!(out, [EMPTY_MESSAGE; 3].concat(), "chunks of {cut}");
            assert!(r.at_boundary(), "chunks of {cut}");
        }
    }

    #[test]
    fn no_byte_of_a_message_reaches_the_copy() {
        let secret = b"\x0a\x10card=4111111111111111";
        let mut r = Reframer::default();
        let out = r.chunk(&message(0, secret), &mut drop_all);
        assert!(!out.windows(4).any(|w| w == b"4111"));
    }

    #[test]
    fn a_body_cut_inside_a_message_is_not_at_a_boundary() {
        let mut r = Reframer::default();
        assert_eq!(r.chunk(&message(0, b"abcdef")[..8], &mut drop_all), EMPTY_MESSAGE);
        assert!(!r.at_boundary());
        let mut r = Reframer::default();
        assert!(r.chunk(&[0, 0, 0], &mut drop_all).is_empty(), "half a prefix");
        assert!(!r.at_boundary());
        assert!(Reframer::default().at_boundary(), "an empty body");
    }

    #[test]
    fn held_messages_are_rewritten_with_their_new_length() {
        let body = [message(0, b"abc"), message(1, b"zipped"), message(0, b""), message(0, &[9; 40]), message(0, b"bad")].concat();
        let mut rewrite = |m: &[u8]| if m == b"bad" { None } else { Some(m.iter().rev().chain(b"!").copied().collect()) };
        for cut in [1, 3, 5, 7, 100] {
            let mut r = Reframer::rewriting(32);
            let out: Vec<u8> = body.chunks(cut).flat_map(|c| r.chunk(c, &mut rewrite)).collect();
            let want = [message(0, b"cba!"), EMPTY_MESSAGE.to_vec(), message(0, b"!"), EMPTY_MESSAGE.to_vec(), EMPTY_MESSAGE.to_vec()].concat();
            assert_eq!(out, want, "chunks of {cut}: compressed, over the limit and unrewritable messages are dropped");
            assert_eq!((r.messages, r.dropped), (5, 3));
            assert!(r.at_boundary());
        }
        // A body cut inside a held message carries only the whole ones.
        let mut r = Reframer::rewriting(32);
        assert_eq!(r.chunk(&[message(0, b"abc"), message(0, b"defg")].concat()[..12], &mut rewrite), message(0, b"cba!"));
        assert!(!r.at_boundary());
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
        assert!(is_protobuf(Some("application/grpc")) && is_protobuf(Some("application/grpc+proto; x=y")));
        assert!(!is_protobuf(Some("application/grpc+json")));
    }
}
