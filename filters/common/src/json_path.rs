//! The field path at a position in a JSON text: where serde_json stopped
//! with an error (it reports a line and column), named the way users write
//! the config (`rules[1].retry.perTryTimeout`). Reading the path back from
//! the text costs a scan on the error path only; tracking it through every
//! visitor while deserializing (a path-tracking deserializer) weighs tens of
//! kilobytes in each module.

/// One open container and where in it the scan is.
enum Frame {
    Object { key: Option<String>, expecting_key: bool },
    Array { index: usize },
}

/// The byte offset just past `column` (1-based) of `line` (1-based).
pub fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let mut line_start = 0;
    for _ in 1..line {
        match text.get(line_start..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
            Some(at) => line_start += at + 1,
            None => break,
        }
    }
    line_start.saturating_add(column).min(text.len())
}

/// The path of the value being read when the scan of `text` reaches `end`:
/// `""` for the top level.
pub fn path_at(text: &[u8], end: usize) -> String {
    let text = text.get(..end).unwrap_or(text);
    let mut frames: Vec<Frame> = Vec::new();
    let mut at = 0;
    while let Some(&b) = text.get(at) {
        match b {
            b'{' => frames.push(Frame::Object { key: None, expecting_key: true }),
            b'[' => frames.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let close = string_end(text, at);
                if let Some(Frame::Object { key, expecting_key: expecting @ true }) = frames.last_mut() {
                    // The key with its quotes, decoded as JSON (escapes and all).
                    let raw = text.get(at..close.map_or(text.len(), |c| c + 1)).unwrap_or_default();
                    *key = Some(serde_json::from_slice::<String>(raw).unwrap_or_else(|_| String::from_utf8_lossy(raw.get(1..).unwrap_or_default()).into_owned()));
                    *expecting = false;
                }
                match close {
                    Some(c) => at = c,
                    None => break,
                }
            }
            _ => {}
        }
        at += 1;
    }
    let mut path = String::new();
    for frame in &frames {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// The index of the quote that closes the string opening at `open`.
fn string_end(text: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    while let Some(&b) = text.get(at) {
        match b {
            b'\\' => at += 2,
            b'"' => return Some(at),
            _ => at += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn at_marker(text: &str) -> String {
        let end = text.find('|').unwrap();
        let text = text.replace('|', "");
        path_at(text.as_bytes(), end)
    }

    #[test]
    fn names_keys_indexes_and_the_top_level() {
        assert_eq!(at_marker(r#"{"a":|1}"#), "a");
        assert_eq!(at_marker(r#"{"a":{"b":[1,2,{"c":|"#), "a.b[2].c");
        assert_eq!(at_marker(r#"{"a":{"b":1}|}"#), "a", "a closed object is its key's value");
        assert_eq!(at_marker(r#"{"a":1,"b"|:2}"#), "b");
        assert_eq!(at_marker(r#"|{"a":1}"#), "");
        assert_eq!(at_marker(r#"{"a\"[{":{"x":"]},{\"|"#), "a\"[{.x", "brackets and quotes inside strings are text");
        assert_eq!(at_marker(r#"{"\u0061b":|"#), "ab");
    }

    #[test]
    fn lines_and_columns_become_offsets() {
        let text = b"{\n  \"a\": 1,\n  \"b\": x\n}";
        assert_eq!(offset_of(text, 1, 1), 1);
        assert_eq!(offset_of(text, 3, 7), 19);
        assert_eq!(offset_of(text, 9, 99), text.len(), "past the end stays at the end");
    }
}
