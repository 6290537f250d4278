//! The few header names a filter reads, asked about every header of a map.
//! A mask of the names' lengths turns most headers away before a byte is
//! compared: a request carries a dozen or more headers, a filter reads two.

/// A set of header names (as the host gives them: lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSet {
    names: Vec<String>,
    /// Bit `n` set: a name of `n` bytes is in the set (bit 63: 63 or more).
    lengths: u64,
}

fn length_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

impl NameSet {
    /// The set of `names`, each kept once, in first-seen order.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut set = Self::default();
        for name in names {
            set.insert(name.as_ref());
        }
        set
    }

    pub fn insert(&mut self, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            self.lengths |= length_bit(name.len());
            self.names.push(name.to_string());
        }
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.lengths & length_bit(name.len()) != 0 && self.names.iter().any(|n| n.as_bytes() == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn holds_each_name_once_and_only_its_names() {
        let long = "x".repeat(70);
        let set = NameSet::new([":path", "user-agent", ":path", long.as_str()]);
        assert_eq!(set.names().len(), 3);
        for name in [":path", "user-agent", long.as_str()] {
            assert!(set.contains(name.as_bytes()), "{name}");
        }
        let longer = "x".repeat(71);
        for name in [":pat", ":paths", "user-agenT", "accept", "", longer.as_str()] {
            assert!(!set.contains(name.as_bytes()), "{name}");
        }
        assert!(!NameSet::default().contains(b""));
    }
}
