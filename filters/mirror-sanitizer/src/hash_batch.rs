//! Pseudonyms of a JSON document written four at a time: a pseudonym has
//! a fixed length, so its place in the output is held by a placeholder and
//! filled in when four values are waiting (or the document ends), and the
//! four HMACs share the lanes of one computation (`sha256x4`).

use crate::mode::{Pseudonymizer, PSEUDONYM_LEN};

#[derive(Default)]
pub struct HashBatch {
    /// Where each waiting pseudonym goes in the output.
    at: Vec<usize>,
    /// The waiting values, end to end, and where each ends.
    values: Vec<u8>,
    ends: Vec<usize>,
}

impl HashBatch {
    /// Writes a JSON string holding `value`'s pseudonym-to-be.
    pub fn push(&mut self, out: &mut Vec<u8>, value: &[u8], hasher: &Pseudonymizer) {
        out.push(b'"');
        self.at.push(out.len());
        out.extend_from_slice(&[b'-'; PSEUDONYM_LEN]);
        out.push(b'"');
        self.values.extend_from_slice(value);
        self.ends.push(self.values.len());
        if self.at.len() == 4 {
            self.flush(out, hasher);
        }
    }

    /// Fills in every waiting pseudonym.
    pub fn flush(&mut self, out: &mut [u8], hasher: &Pseudonymizer) {
        if self.at.is_empty() {
            return;
        }
        let mut values: [&[u8]; 4] = [&[]; 4];
        let mut start = 0;
        for (v, &end) in values.iter_mut().zip(&self.ends) {
            *v = self.values.get(start..end).unwrap_or_default();
            start = end;
        }
        let names = hasher.pseudonyms4(values.get(..self.at.len()).unwrap_or_default());
        for (&at, name) in self.at.iter().zip(&names) {
            if let Some(slot) = out.get_mut(at..at + PSEUDONYM_LEN) {
                slot.copy_from_slice(name);
            }
        }
        self.at.clear();
        self.values.clear();
        self.ends.clear();
    }
}
