//! The names a request looked up last, by their bytes: a document repeats a
//! few keys many times, and comparing one slot costs less than a lookup in
//! the policy's shared map.

use crate::config::Known;
use crate::names::NameKind;

const SLOTS: usize = 64;

#[derive(Default)]
pub struct NameMemo {
    slots: Vec<Option<Slot>>,
}

struct Slot {
    hash: u32,
    kind: NameKind,
    name: String,
    known: Known,
}

/// FNV-1a over the kind and the name's bytes.
fn hash(kind: NameKind, name: &str) -> u32 {
    let mut h = 0x811c_9dc5u32 ^ kind.index() as u32;
    for &b in name.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

impl NameMemo {
    /// What is remembered for `name`, or else `compute`'s answer, then
    /// remembered in its slot.
    pub fn get_or(&mut self, kind: NameKind, name: &str, compute: impl FnOnce() -> Known) -> Known {
        let hash = hash(kind, name);
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let Some(slot) = self.slots.get_mut(hash as usize % SLOTS) else { return compute() };
        match slot {
            Some(s) if s.hash == hash && s.kind == kind && s.name == name => s.known,
            Some(s) => {
                let known = compute();
                s.hash = hash;
                s.kind = kind;
                s.name.clear();
                s.name.push_str(name);
                s.known = known;
                known
            }
            None => {
                let known = compute();
                *slot = Some(Slot { hash, kind, name: name.to_string(), known });
                known
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::NameVerdict;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn known(clean: bool) -> Known {
        Known { verdict: NameVerdict { selection: None, allowed: true }, clean }
    }

    #[test]
    fn a_name_is_computed_once_until_another_takes_its_slot() {
        let mut m = NameMemo::default();
        assert!(!m.get_or(NameKind::Json, "email", || known(false)).clean);
        assert!(!m.get_or(NameKind::Json, "email", || known(true)).clean, "remembered");
        assert!(m.get_or(NameKind::Form, "email", || known(true)).clean, "another kind is another name");
        for i in 0..1000 {
            let name = format!("k{i}");
            assert_eq!(m.get_or(NameKind::Json, &name, || known(i % 2 == 0)).clean, i % 2 == 0);
            assert_eq!(m.get_or(NameKind::Json, &name, || known(i % 2 != 0)).clean, i % 2 == 0, "{name} remembered");
        }
    }
}
