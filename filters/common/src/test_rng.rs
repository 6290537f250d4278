//! A fixed-seed xorshift generator for the filters' property tests: the
//! same cases on every run, native and wasm32, without a crate.

/// Returns a generator of 64-bit values starting from `seed` (non-zero).
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
