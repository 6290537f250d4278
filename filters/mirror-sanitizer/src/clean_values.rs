//! Header values in which the detectors found nothing, remembered by the
//! policy for later requests. Most of a shadow request's header values
//! (user agent, accept, forwarded headers, routing headers) repeat from one
//! request to the next, and comparing a value's bytes costs far less than
//! running every detector over it again. Direct-mapped: a new value takes
//! its slot, so values seen once (request ids) push out one slot each
//! instead of filling the memo for good. A slot answers only for the exact
//! bytes it holds.

use crate::text::Fnv;
use std::cell::RefCell;
use std::hash::Hasher;

const SLOTS: usize = 256;
/// Longer values are not remembered (they are rare and costly to hold).
pub const LONGEST: usize = 512;

/// A remembered value and its hash.
type Slot = Option<(u32, Box<[u8]>)>;

#[derive(Debug, Clone, Default)]
pub struct CleanValues {
    slots: RefCell<Vec<Slot>>,
}

/// The value's FNV-1a hash, folded to 32 bits.
fn hash(value: &[u8]) -> u32 {
    let mut h = Fnv::default();
    h.write(value);
    let h = h.finish();
    (h ^ (h >> 32)) as u32
}

impl CleanValues {
    /// Whether `value` was remembered as clean, and its hash for `remember`.
    pub fn contains(&self, value: &[u8]) -> (bool, u32) {
        let h = hash(value);
        let Ok(slots) = self.slots.try_borrow() else { return (false, h) };
        let hit = matches!(slots.get(h as usize % SLOTS), Some(Some((sh, v))) if *sh == h && **v == *value);
        (hit, h)
    }

    /// Remembers `value` (whose hash `contains` gave) as clean.
    pub fn remember(&self, value: &[u8], h: u32) {
        if value.len() > LONGEST {
            return;
        }
        let Ok(mut slots) = self.slots.try_borrow_mut() else { return };
        if slots.is_empty() {
            slots.resize_with(SLOTS, || None);
        }
        if let Some(slot) = slots.get_mut(h as usize % SLOTS) {
            *slot = Some((h, value.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_value_is_remembered_by_its_exact_bytes_until_another_takes_its_slot() {
        let m = CleanValues::default();
        let (hit, h) = m.contains(b"shop-client/1.0");
        assert!(!hit);
        m.remember(b"shop-client/1.0", h);
        assert!(m.contains(b"shop-client/1.0").0, "remembered");
        assert!(!m.contains(b"shop-client/1.1").0, "another value");
        assert!(!m.contains(b"shop-client/1.").0, "a prefix");
        // Thousands of values seen once: each takes one slot, and the
        // last of them are remembered.
        for i in 0..10_000 {
            let v = format!("id-{i}");
            let (hit, h) = m.contains(v.as_bytes());
            assert!(!hit, "{v} was never remembered");
            m.remember(v.as_bytes(), h);
            assert!(m.contains(v.as_bytes()).0, "{v}");
        }
    }

    #[test]
    fn long_values_are_not_remembered() {
        let m = CleanValues::default();
        let long = vec![b'a'; LONGEST + 1];
        let (_, h) = m.contains(&long);
        m.remember(&long, h);
        assert!(!m.contains(&long).0);
    }
}
