//! Protobuf's wire format, read strictly and written back: varints, field
//! keys, and the four payload shapes (varint, fixed 64 bits, length
//! delimited, fixed 32 bits). Reading never panics: a truncated varint, a
//! length past the end, field number 0 or a group is an error value.

/// How a field's payload is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl Wire {
    fn from_bits(bits: u64) -> Result<Self, String> {
        match bits {
            0 => Ok(Wire::Varint),
            1 => Ok(Wire::Fixed64),
            2 => Ok(Wire::Len),
            5 => Ok(Wire::Fixed32),
            3 | 4 => Err("a group (wire types 3 and 4) is not supported".into()),
            n => Err(format!("wire type {n} does not exist")),
        }
    }

    fn bits(self) -> u64 {
        match self {
            Wire::Varint => 0,
            Wire::Fixed64 => 1,
            Wire::Len => 2,
            Wire::Fixed32 => 5,
        }
    }
}

/// One field as it came: its number, its layout and its payload (for a
/// varint or fixed field, the value; for a length-delimited one, the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub wire: Wire,
    pub value: u64,
    pub bytes: &'a [u8],
}

/// Reads the fields of one message in order.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else { return Err("a varint cut short".into()) };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| format!("{n} bytes announced, {} left", self.bytes.len() - self.pos.min(self.bytes.len())))?;
        let out = self.bytes.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    /// The next field, or `None` at the end of the message.
    pub fn field(&mut self) -> Result<Option<Field<'a>>, String> {
        if self.at_end() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok().filter(|&n| n != 0 && n <= MAX_FIELD_NUMBER).ok_or_else(|| format!("field number {} is out of range", key >> 3))?;
        let wire = Wire::from_bits(key & 7)?;
        let (value, bytes) = match wire {
            Wire::Varint => (self.varint()?, &[][..]),
            Wire::Fixed64 => (u64::from_le_bytes(fixed(self.take(8)?)), &[][..]),
            Wire::Fixed32 => {
                let b = self.take(4)?;
                (u64::from(u32::from_le_bytes([at(b, 0), at(b, 1), at(b, 2), at(b, 3)])), &[][..])
            }
            Wire::Len => {
                let n = usize::try_from(self.varint()?).map_err(|_| "a length beyond memory".to_string())?;
                (0, self.take(n)?)
            }
        };
        Ok(Some(Field { number, wire, value, bytes }))
    }
}

/// The largest field number protobuf allows (2^29 - 1).
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn fixed(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, v) in out.iter_mut().zip(b) {
        *o = *v;
    }
    out
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_key(out: &mut Vec<u8>, number: u32, wire: Wire) {
    put_varint(out, (u64::from(number) << 3) | wire.bits());
}

/// A length-delimited field: key, length, bytes.
pub fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, Wire::Len);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A field with a numeric payload, laid out as `wire` says.
pub fn put_number(out: &mut Vec<u8>, number: u32, wire: Wire, value: u64) {
    put_key(out, number, wire);
    match wire {
        Wire::Varint => put_varint(out, value),
        Wire::Fixed64 => out.extend_from_slice(&value.to_le_bytes()),
        Wire::Fixed32 => out.extend_from_slice(&(value as u32).to_le_bytes()),
        Wire::Len => put_varint(out, 0),
    }
}

/// Damaged copies of good bytes, for the readers' never-panic tests.
#[cfg(test)]
pub mod damage {
    /// Calls `f` with every truncation of `good`, then with `n` copies each
    /// with one byte changed (a fixed-seed xorshift picks where and what).
    pub fn each_damaged(good: &[u8], mut seed: u64, n: usize, mut f: impl FnMut(&[u8])) {
        for cut in 0..good.len() {
            f(&good[..cut]);
        }
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bad = good.to_vec();
            let at = (seed as usize) % bad.len().max(1);
            if let Some(b) = bad.get_mut(at) {
                *b = (seed >> 32) as u8;
            }
            f(&bad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    type Owned = (u32, Wire, u64, Vec<u8>);

    fn fields(bytes: &[u8]) -> Result<Vec<Owned>, String> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(f) = r.field()? {
            out.push((f.number, f.wire, f.value, f.bytes.to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn fields_round_trip() {
        let mut m = Vec::new();
        put_number(&mut m, 1, Wire::Varint, 300);
        put_len(&mut m, 2, b"testing");
        put_number(&mut m, 3, Wire::Fixed64, u64::MAX);
        put_number(&mut m, 4, Wire::Fixed32, 7);
        put_number(&mut m, MAX_FIELD_NUMBER, Wire::Varint, 1);
        assert_eq!(&m[..3], [0x08, 0xac, 0x02], "the protobuf documentation's 150 → 300 example");
        let f = fields(&m).unwrap();
        assert_eq!(f[0], (1, Wire::Varint, 300, vec![]));
        assert_eq!(f[1], (2, Wire::Len, 0, b"testing".to_vec()));
        assert_eq!(f[2], (3, Wire::Fixed64, u64::MAX, vec![]));
        assert_eq!(f[3], (4, Wire::Fixed32, 7, vec![]));
        assert_eq!(f[4].0, MAX_FIELD_NUMBER);
    }

    #[test]
    fn hostile_bytes_are_errors() {
        for bad in [
            &[0x08][..],                       // a key without its varint
            &[0x08, 0x80],                     // a varint cut short
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // 11 bytes
            &[0x12, 0x05, b'a'],               // a length past the end
            &[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], // a length of 4 GiB
            &[0x00, 0x00],                     // field number 0
            &[0x0b],                           // a group
            &[0x0e],                           // wire type 6
            &[0x09, 1, 2, 3],                  // fixed64 cut short
            &[0x0d, 1],                        // fixed32 cut short
            &[0xf8, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00], // field number 2^32 - 1
        ] {
            assert!(fields(bad).is_err(), "{bad:?}");
        }
        assert_eq!(fields(&[]).unwrap(), []);
    }
}
