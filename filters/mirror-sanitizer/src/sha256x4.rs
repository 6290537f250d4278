//! HMAC-SHA-256 of four short values at once: one message per 32-bit lane
//! of a 128-bit vector. A pseudonym is two SHA-256 compressions (the inner
//! and the outer hash, the key's blocks absorbed once at configuration),
//! and in a body dense with identifiers those compressions are most of the
//! work; the rounds of one message depend on each other, four messages do
//! not. In the module the lanes are wasm `simd128` (which Envoy's V8 and
//! wasmtime run); elsewhere (native unit tests) the same rounds run on
//! arrays. Results are those of RFC 2104 HMAC with FIPS 180-4 SHA-256; the
//! tests compare them with RustCrypto's.

use sha2::{Digest, Sha256};

/// The longest value hashed in one block: 64 bytes less the padding's
/// `0x80` and the 8-byte length.
pub const MAX_SHORT: usize = 55;

/// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the
/// cube roots of the first 64 primes.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// FIPS 180-4 §5.3.3: the initial hash value.
const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// A message block as sixteen big-endian words.
pub type Block = [u32; 16];

/// Four 32-bit lanes and the operations SHA-256 needs on them.
trait Lanes: Copy {
    fn splat(x: u32) -> Self;
    fn gather(x: [u32; 4]) -> Self;
    fn lanes(self) -> [u32; 4];
    fn add(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    /// `self & !o`.
    fn and_not(self, o: Self) -> Self;
    fn shr(self, n: u32) -> Self;
    fn rotr(self, n: u32) -> Self;
}

impl Lanes for [u32; 4] {
    #[inline(always)]
    fn splat(x: u32) -> Self {
        [x; 4]
    }
    #[inline(always)]
    fn gather(x: [u32; 4]) -> Self {
        x
    }
    #[inline(always)]
    fn lanes(self) -> [u32; 4] {
        self
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let [a, b, c, d] = self;
        let [e, f, g, h] = o;
        [a.wrapping_add(e), b.wrapping_add(f), c.wrapping_add(g), d.wrapping_add(h)]
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        let [a, b, c, d] = self;
        let [e, f, g, h] = o;
        [a ^ e, b ^ f, c ^ g, d ^ h]
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        let [a, b, c, d] = self;
        let [e, f, g, h] = o;
        [a & e, b & f, c & g, d & h]
    }
    #[inline(always)]
    fn and_not(self, o: Self) -> Self {
        let [a, b, c, d] = self;
        let [e, f, g, h] = o;
        [a & !e, b & !f, c & !g, d & !h]
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        self.map(|x| x >> n)
    }
    #[inline(always)]
    fn rotr(self, n: u32) -> Self {
        self.map(|x| x.rotate_right(n))
    }
}

#[cfg(target_arch = "wasm32")]
mod simd {
    use core::arch::wasm32::{u32x4, u32x4_add, u32x4_extract_lane, u32x4_shl, u32x4_shr, u32x4_splat, v128, v128_and, v128_andnot, v128_or, v128_xor};

    #[derive(Clone, Copy)]
    pub struct V(v128);

    impl super::Lanes for V {
        #[inline(always)]
        fn splat(x: u32) -> Self {
            V(u32x4_splat(x))
        }
        #[inline(always)]
        fn gather([a, b, c, d]: [u32; 4]) -> Self {
            V(u32x4(a, b, c, d))
        }
        #[inline(always)]
        fn lanes(self) -> [u32; 4] {
            [u32x4_extract_lane::<0>(self.0), u32x4_extract_lane::<1>(self.0), u32x4_extract_lane::<2>(self.0), u32x4_extract_lane::<3>(self.0)]
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            V(u32x4_add(self.0, o.0))
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            V(v128_xor(self.0, o.0))
        }
        #[inline(always)]
        fn and(self, o: Self) -> Self {
            V(v128_and(self.0, o.0))
        }
        #[inline(always)]
        fn and_not(self, o: Self) -> Self {
            V(v128_andnot(self.0, o.0))
        }
        #[inline(always)]
        fn shr(self, n: u32) -> Self {
            V(u32x4_shr(self.0, n))
        }
        #[inline(always)]
        fn rotr(self, n: u32) -> Self {
            V(v128_or(u32x4_shr(self.0, n), u32x4_shl(self.0, 32 - n)))
        }
    }

    /// Everything inlined here is compiled for `simd128`.
    #[target_feature(enable = "simd128")]
    pub fn compress4(state: &[u32; 8], blocks: &[super::Block; 4]) -> [[u32; 8]; 4] {
        super::compress::<V>(state, blocks)
    }
}

/// One compression of each lane's block from the same `state`.
#[inline(always)]
// Every index is taken modulo the array's length: none can be out of range.
#[allow(clippy::indexing_slicing)]
fn compress<L: Lanes>(state: &[u32; 8], blocks: &[Block; 4]) -> [[u32; 8]; 4] {
    let mut w = [L::splat(0); 16];
    for (t, wt) in w.iter_mut().enumerate() {
        *wt = L::gather([blocks[0][t], blocks[1][t], blocks[2][t], blocks[3][t]]);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state.map(L::splat);
    // Sixteen rounds a step, the variables renamed instead of moved, the
    // schedule's ring indexed by constants so it stays in locals.
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $base:expr, $k:expr) => {
            if $base > 0 {
                let w15 = w[($k + 1) % 16];
                let w2 = w[($k + 14) % 16];
                let s0 = w15.rotr(7).xor(w15.rotr(18)).xor(w15.shr(3));
                let s1 = w2.rotr(17).xor(w2.rotr(19)).xor(w2.shr(10));
                w[$k] = w[$k].add(s0).add(w[($k + 9) % 16]).add(s1);
            }
            let big_s1 = $e.rotr(6).xor($e.rotr(11)).xor($e.rotr(25));
            let ch = $e.and($f).xor($g.and_not($e));
            let t1 = $h.add(big_s1).add(ch).add(L::splat(K[($base + $k) % 64])).add(w[$k]);
            let big_s0 = $a.rotr(2).xor($a.rotr(13)).xor($a.rotr(22));
            let maj = $a.and($b).xor($a.and($c)).xor($b.and($c));
            $d = $d.add(t1);
            $h = t1.add(big_s0.add(maj));
        };
    }
    for base in [0, 16, 32, 48] {
        round!(a, b, c, d, e, f, g, h, base, 0);
        round!(h, a, b, c, d, e, f, g, base, 1);
        round!(g, h, a, b, c, d, e, f, base, 2);
        round!(f, g, h, a, b, c, d, e, base, 3);
        round!(e, f, g, h, a, b, c, d, base, 4);
        round!(d, e, f, g, h, a, b, c, base, 5);
        round!(c, d, e, f, g, h, a, b, base, 6);
        round!(b, c, d, e, f, g, h, a, base, 7);
        round!(a, b, c, d, e, f, g, h, base, 8);
        round!(h, a, b, c, d, e, f, g, base, 9);
        round!(g, h, a, b, c, d, e, f, base, 10);
        round!(f, g, h, a, b, c, d, e, base, 11);
        round!(e, f, g, h, a, b, c, d, base, 12);
        round!(d, e, f, g, h, a, b, c, base, 13);
        round!(c, d, e, f, g, h, a, b, base, 14);
        round!(b, c, d, e, f, g, h, a, base, 15);
    }
    let v = [a, b, c, d, e, f, g, h].map(L::lanes);
    let mut out = [*state; 4];
    for (lane, o) in out.iter_mut().enumerate() {
        for (word, s) in o.iter_mut().enumerate() {
            *s = s.wrapping_add(v[word][lane]);
        }
    }
    out
}

fn compress4(state: &[u32; 8], blocks: &[Block; 4]) -> [[u32; 8]; 4] {
    #[cfg(target_arch = "wasm32")]
    {
        simd::compress4(state, blocks)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        compress::<[u32; 4]>(state, blocks)
    }
}

/// The last block of a message whose `tail` (at most 55 bytes) follows
/// `before` bytes already compressed: the tail, `0x80`, zeros, and the
/// message's length in bits.
fn last_block(tail: &[u8], before: usize) -> Block {
    let mut bytes = [0u8; 64];
    let n = tail.len().min(MAX_SHORT);
    for (b, t) in bytes.iter_mut().zip(tail.iter().take(n)) {
        *b = *t;
    }
    if let Some(b) = bytes.get_mut(n) {
        *b = 0x80;
    }
    let bits = ((before + n) as u64) * 8;
    for (b, l) in bytes.iter_mut().skip(56).zip(bits.to_be_bytes()) {
        *b = l;
    }
    words(&bytes)
}

fn words(bytes: &[u8; 64]) -> Block {
    let mut w = [0u32; 16];
    for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = chunk.iter().fold(0, |acc, &b| acc << 8 | u32::from(b));
    }
    w
}

/// A state's words as the digest's 32 bytes.
fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    bytes
}

/// A key's inner and outer states (its padded blocks, absorbed once).
#[derive(Clone)]
pub struct KeyedHmac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl KeyedHmac {
    pub fn new(key: &[u8]) -> Self {
        // RFC 2104: the key padded to the block, a longer one hashed first.
        let mut block = [0u8; 64];
        if key.len() > block.len() {
            block.iter_mut().zip(Sha256::digest(key)).for_each(|(b, k)| *b = k);
        } else {
            block.iter_mut().zip(key).for_each(|(b, k)| *b = *k);
        }
        let pad = |x: u8| words(&block.map(|k| k ^ x));
        let [inner, outer, ..] = compress4(&IV, &[pad(0x36), pad(0x5c), [0; 16], [0; 16]]);
        Self { inner, outer }
    }

    /// HMAC-SHA-256 of up to four values of at most [`MAX_SHORT`] bytes
    /// (longer ones, and lanes past `values`, give nothing).
    pub fn macs(&self, values: &[&[u8]]) -> [Option<[u8; 32]>; 4] {
        let mut blocks = [[0u32; 16]; 4];
        for (block, v) in blocks.iter_mut().zip(values) {
            *block = last_block(v, 64);
        }
        let inner = compress4(&self.inner, &blocks);
        for (block, digest) in blocks.iter_mut().zip(&inner) {
            *block = last_block(&digest_bytes(digest), 64);
        }
        let outer = compress4(&self.outer, &blocks);
        let mut out = [None; 4];
        for ((o, digest), v) in out.iter_mut().zip(&outer).zip(values) {
            if v.len() <= MAX_SHORT {
                *o = Some(digest_bytes(digest));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn reference(key: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn rfc_4231_test_case_2() {
        let h = KeyedHmac::new(b"Jefe");
        let [mac, none, ..] = h.macs(&[b"what do ya want for nothing?"]);
        let hex: String = mac.unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(none.is_none(), "a lane without a value gives nothing");
    }

    #[test]
    fn every_length_and_lane_matches_the_reference() {
        let key = b"bench-hash-key-0123456789";
        let h = KeyedHmac::new(key);
        let values: Vec<Vec<u8>> = (0..=MAX_SHORT).map(|n| (0..n).map(|i| (i * 37 + n * 11) as u8).collect()).collect();
        for group in values.chunks(4) {
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            let macs = h.macs(&refs);
            for (v, mac) in group.iter().zip(macs) {
                assert_eq!(mac, Some(reference(key, v)), "value of {} bytes", v.len());
            }
        }
    }

    #[test]
    fn longer_values_are_left_to_the_caller() {
        let h = KeyedHmac::new(b"k");
        let long = [b'x'; MAX_SHORT + 1];
        assert_eq!(h.macs(&[&long, b"ok"]), [None, Some(reference(b"k", b"ok")), None, None]);
    }
}
