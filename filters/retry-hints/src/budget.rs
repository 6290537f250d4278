//! The retry budget, as Finagle and Linkerd keep one: over a sliding window,
//! retries may add at most `ratio` of the requests plus a floor of
//! `min_per_second` × the window's seconds. It lives in proxy-wasm shared
//! data, so every worker of the proxy spends from one budget, and every
//! change is a compare-and-swap that is tried again when another worker
//! wrote in between.
//!
//! A request reserves the retries it is granted when it starts, so requests
//! in flight at once cannot all spend the last retry; when it ends, the
//! retries Envoy really made replace the reservation.
//!
//! A worker does not go to shared data for every request: it takes a
//! [`Lease`] of spare retries for the current bucket, grants from it and
//! takes back into it what its requests did not use, and settles with the
//! window when the bucket changes or the lease runs short. Leased retries
//! count as spent for every worker until they come back, and the requests a
//! lease served count only when it is settled: both err toward fewer
//! retries, never more.

use filter_common::{Host, HostError, HostResult};

/// Buckets per window: the window slides a tenth of its length at a time.
pub const BUCKETS: usize = 10;
const BUCKET_BYTES: usize = 16;
/// Compare-and-swap attempts before giving up on one update.
const CAS_TRIES: usize = 16;
/// A lease takes this share of the retries the window has to spare...
const LEASE_SHARE: u64 = 8;
/// ...and at most this many: enough for a worker's requests in flight, few
/// enough that an idle worker's lease holds back little of the budget.
const LEASE_MAX: u64 = 64;

/// What the budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Retries allowed per 1,000 requests (200 = 20%).
    pub ratio_permille: u64,
    pub min_per_second: u64,
    pub window_ms: u64,
}

impl BudgetConfig {
    fn bucket_ms(&self) -> u64 {
        (self.window_ms / BUCKETS as u64).max(1)
    }

    /// The bucket a moment falls in.
    pub fn tick(&self, now_ms: u64) -> u64 {
        now_ms / self.bucket_ms()
    }

    /// Retries the window allows for `requests` requests in it.
    pub fn allowance(&self, requests: u64) -> u64 {
        requests.saturating_mul(self.ratio_permille) / 1000 + self.min_per_second.saturating_mul(self.window_ms) / 1000
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    tick: u64,
    requests: u32,
    retries: u32,
}

/// The counts of the last `BUCKETS` ticks, as stored in shared data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    buckets: [Bucket; BUCKETS],
}

impl Window {
    /// Reads the stored form; anything else (absent, another layout) is a
    /// fresh window rather than an error, so a bad value heals itself.
    pub fn decode(bytes: Option<&[u8]>) -> Self {
        let mut window = Self::default();
        let Some(bytes) = bytes.filter(|b| b.len() == BUCKETS * BUCKET_BYTES) else { return window };
        // A bucket is one little-endian u128: tick, requests, retries.
        for (bucket, chunk) in window.buckets.iter_mut().zip(bytes.chunks_exact(BUCKET_BYTES)) {
            let Ok(word) = <[u8; BUCKET_BYTES]>::try_from(chunk) else { continue };
            let word = u128::from_le_bytes(word);
            *bucket = Bucket { tick: word as u64, requests: (word >> 64) as u32, retries: (word >> 96) as u32 };
        }
        window
    }

    pub fn encode(&self) -> [u8; BUCKETS * BUCKET_BYTES] {
        let mut out = [0u8; BUCKETS * BUCKET_BYTES];
        for (b, chunk) in self.buckets.iter().zip(out.chunks_exact_mut(BUCKET_BYTES)) {
            let word = u128::from(b.tick) | u128::from(b.requests) << 64 | u128::from(b.retries) << 96;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    fn live(&self, tick: u64) -> impl Iterator<Item = &Bucket> {
        self.buckets.iter().filter(move |b| b.tick <= tick && tick - b.tick < BUCKETS as u64 && (b.requests > 0 || b.retries > 0))
    }

    /// Requests and retries in the window that ends at `tick`.
    pub fn totals(&self, tick: u64) -> (u64, u64) {
        self.live(tick).fold((0, 0), |(q, r), b| (q + u64::from(b.requests), r + u64::from(b.retries)))
    }

    /// Retries still allowed at `tick`.
    pub fn remaining(&self, config: &BudgetConfig, tick: u64) -> u64 {
        let (requests, retries) = self.totals(tick);
        config.allowance(requests).saturating_sub(retries)
    }

    /// The bucket for `tick`, emptied first if it last held an older tick.
    /// A newer one (the clock stepped back) is kept and counted into, so
    /// nothing recorded is lost.
    fn bucket(&mut self, tick: u64) -> Option<&mut Bucket> {
        let bucket = self.buckets.get_mut((tick % BUCKETS as u64) as usize)?;
        if bucket.tick < tick {
            *bucket = Bucket { tick, ..Bucket::default() };
        }
        Some(bucket)
    }

    /// Counts one request and reserves up to `wanted` retries for it;
    /// returns the retries granted.
    pub fn deposit(&mut self, config: &BudgetConfig, tick: u64, wanted: u32) -> u32 {
        let Some(bucket) = self.bucket(tick) else { return 0 };
        bucket.requests = bucket.requests.saturating_add(1);
        let remaining = self.remaining(config, tick);
        let granted = u32::try_from(remaining).unwrap_or(u32::MAX).min(wanted);
        if let Some(bucket) = self.bucket(tick) {
            bucket.retries = bucket.retries.saturating_add(granted);
        }
        granted
    }

    /// `deposit`, after settling `lease`, and then a new lease for `tick`
    /// of a share of the retries left.
    pub fn deposit_leasing(&mut self, config: &BudgetConfig, tick: u64, wanted: u32, lease: &mut Lease) -> u32 {
        lease.settle(self);
        let granted = self.deposit(config, tick, wanted);
        let spare = (self.remaining(config, tick) / LEASE_SHARE).min(LEASE_MAX);
        let tokens = u32::try_from(spare).unwrap_or(0);
        if let Some(bucket) = self.bucket(tick) {
            bucket.retries = bucket.retries.saturating_add(tokens);
            *lease = Lease { tick: Some(tick), tokens, requests: 0 };
        }
        granted
    }

    /// The bucket that still holds `tick`, if it is in the window (never
    /// one emptied for it, unlike [`Window::bucket`]).
    fn held(&mut self, tick: u64) -> Option<&mut Bucket> {
        self.buckets.get_mut((tick % BUCKETS as u64) as usize).filter(|b| b.tick == tick)
    }

    /// Counts `requests` into the bucket of `tick`, if it is still in the window.
    fn count_requests(&mut self, tick: u64, requests: u32) {
        if let Some(bucket) = self.held(tick) {
            bucket.requests = bucket.requests.saturating_add(requests);
        }
    }

    /// Replaces a reservation made at `reserved_tick` by the retries really
    /// made: more are charged now; fewer give back to the reservation's
    /// bucket if it is still in the window.
    pub fn settle(&mut self, tick: u64, reserved_tick: u64, reserved: u32, made: u32) {
        if made > reserved {
            if let Some(bucket) = self.bucket(tick) {
                bucket.retries = bucket.retries.saturating_add(made - reserved);
            }
        } else if made < reserved {
            self.give_back(Giveback { tick: reserved_tick, retries: reserved - made });
        }
    }

    /// Returns reserved retries that were not made to their bucket, if it
    /// is still in the window.
    pub fn give_back(&mut self, g: Giveback) {
        if let Some(bucket) = self.held(g.tick) {
            bucket.retries = bucket.retries.saturating_sub(g.retries);
        }
    }
}

/// Retries a request reserved at `tick` and did not make. A worker keeps
/// them until its next update of the same budget, which carries them, so a
/// request that needed no retry costs one shared-data update, not two.
/// Until then the budget counts them as spent: the delay errs toward fewer
/// retries, never more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Giveback {
    pub tick: u64,
    pub retries: u32,
}

/// Retries one worker took from a window for one bucket, not yet granted,
/// and the requests it granted from them, not yet counted in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    /// The bucket the retries were taken in; `None`: no lease.
    tick: Option<u64>,
    tokens: u32,
    requests: u32,
}

impl Lease {
    /// Counts a request at `tick` and grants it `wanted` retries from the
    /// lease; `None` when the lease is of another bucket or holds fewer:
    /// then the window decides (`Window::deposit_leasing`).
    pub fn grant(&mut self, tick: u64, wanted: u32) -> Option<u32> {
        if self.tick != Some(tick) || self.tokens < wanted {
            return None;
        }
        self.tokens -= wanted;
        self.requests = self.requests.saturating_add(1);
        Some(wanted)
    }

    /// Takes back retries reserved in the lease's bucket and not made;
    /// false for another bucket's (they go back to the window).
    pub fn give_back(&mut self, g: Giveback) -> bool {
        if self.tick != Some(g.tick) {
            return false;
        }
        self.tokens = self.tokens.saturating_add(g.retries);
        true
    }

    /// Returns the unused retries to the window and counts the requests
    /// served, in the lease's bucket if it is still in the window; the
    /// lease is then empty.
    pub fn settle(&mut self, w: &mut Window) {
        if let Some(tick) = self.tick {
            w.count_requests(tick, self.requests);
            w.give_back(Giveback { tick, retries: self.tokens });
        }
        *self = Lease::default();
    }
}

/// Shared data with compare-and-swap: what the budget needs of the host.
pub trait SharedData {
    fn get(&self, key: &str) -> HostResult<(Option<Vec<u8>>, u32)>;
    fn set(&self, key: &str, value: &[u8], cas: u32) -> HostResult<()>;
}

impl<H: Host + ?Sized> SharedData for H {
    fn get(&self, key: &str) -> HostResult<(Option<Vec<u8>>, u32)> {
        self.shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> HostResult<()> {
        self.set_shared_data(key, value, cas)
    }
}

/// Reads the window under `key`, applies `change`, and writes it back if no
/// other worker wrote in between; otherwise starts over with their value.
pub fn update<S: SharedData + ?Sized, R>(store: &S, key: &str, mut change: impl FnMut(&mut Window) -> R) -> HostResult<R> {
    let mut last = HostError::new("proxy_set_shared_data", filter_common::abi::status::CAS_MISMATCH);
    for _ in 0..CAS_TRIES {
        let (bytes, cas) = store.get(key)?;
        let mut window = Window::decode(bytes.as_deref());
        let result = change(&mut window);
        match store.set(key, &window.encode(), cas) {
            Ok(()) => return Ok(result),
            Err(e) if e.is_cas_mismatch() => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_common::mock::MockHost;
    use std::cell::{Cell, RefCell};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Linkerd's defaults: 20%, 10 per second, 10 s.
    const DEFAULT: BudgetConfig = BudgetConfig { ratio_permille: 200, min_per_second: 10, window_ms: 10_000 };

    #[test]
    fn allowance_is_the_share_plus_the_floor() {
        assert_eq!(DEFAULT.allowance(0), 100);
        assert_eq!(DEFAULT.allowance(1000), 300);
        assert_eq!(DEFAULT.allowance(4), 100, "a fifth of 4 rounds down");
        assert_eq!(DEFAULT.allowance(u64::MAX), u64::MAX / 1000 + 100, "no overflow");
        let none = BudgetConfig { ratio_permille: 0, min_per_second: 0, window_ms: 10_000 };
        assert_eq!(none.allowance(1_000_000), 0);
    }

    #[test]
    fn grants_stop_when_the_budget_is_spent() {
        let config = BudgetConfig { ratio_permille: 200, min_per_second: 0, window_ms: 10_000 };
        let mut w = Window::default();
        let granted: u32 = (0..100).map(|_| w.deposit(&config, 0, 3)).sum();
        assert_eq!(granted, 20, "20% of 100 requests");
        assert_eq!(w.totals(0), (100, 20));
        assert_eq!(w.remaining(&config, 0), 0);
    }

    #[test]
    fn a_reservation_is_replaced_by_the_retries_made() {
        let mut w = Window::default();
        let granted = w.deposit(&DEFAULT, 5, 3);
        assert_eq!(granted, 3);
        assert_eq!(w.totals(5), (1, 3));
        w.settle(6, 5, granted, 1);
        assert_eq!(w.totals(6), (1, 1), "two reserved retries were not made");
        w.settle(7, 5, 0, 2);
        assert_eq!(w.totals(7), (1, 3), "retries beyond the reservation are charged now");
        // A reservation whose bucket left the window gives nothing back.
        let mut w = Window::default();
        w.deposit(&DEFAULT, 0, 3);
        w.settle(20, 0, 3, 0);
        assert_eq!(w.totals(20), (0, 0));
    }

    #[test]
    fn the_window_rolls_over() {
        let config = BudgetConfig { ratio_permille: 1000, min_per_second: 0, window_ms: 10_000 };
        let mut w = Window::default();
        for tick in 0..10 {
            w.deposit(&config, tick, 0);
        }
        assert_eq!(w.totals(9), (10, 0), "ten buckets of one second each");
        assert_eq!(w.totals(10), (9, 0), "tick 0 left the window");
        w.deposit(&config, 10, 0);
        assert_eq!(w.totals(10), (10, 0), "slot 0 was reused for tick 10");
        assert_eq!(w.totals(25), (0, 0), "all of it is old");
        assert_eq!(w.remaining(&config, 25), 0);
        assert_eq!(config.tick(9_999), 9);
        assert_eq!(config.tick(10_000), 10);
    }

    #[test]
    fn a_clock_that_steps_back_loses_nothing() {
        let mut w = Window::default();
        w.deposit(&DEFAULT, 20, 1);
        w.deposit(&DEFAULT, 10, 1);
        assert_eq!(w.totals(20), (2, 2), "tick 10 shares slot 0 with tick 20 and counts into it");
    }

    #[test]
    fn the_stored_form_round_trips_and_bad_values_start_afresh() {
        let mut w = Window::default();
        w.deposit(&DEFAULT, 123_456_789, 2);
        w.deposit(&DEFAULT, 123_456_790, 0);
        let bytes = w.encode();
        assert_eq!(bytes.len(), BUCKETS * 16);
        assert_eq!(Window::decode(Some(&bytes)), w);
        assert_eq!(Window::decode(Some(b"garbage")), Window::default());
        assert_eq!(Window::decode(None), Window::default());
    }

    #[test]
    fn workers_share_one_budget_through_shared_data() {
        let host = MockHost::new();
        let first = update(&host, "budget", |w| w.deposit(&DEFAULT, 0, 3)).unwrap();
        let second = update(&host, "budget", |w| w.deposit(&DEFAULT, 0, 3)).unwrap();
        assert_eq!((first, second), (3, 3));
        let (bytes, cas) = host.shared_data("budget").unwrap();
        assert_eq!(cas, 2);
        assert_eq!(Window::decode(bytes.as_deref()).totals(0), (2, 6));
    }

    /// Workers granting from leases on one window, requests starting and
    /// ending in random order over a minute: every grant leaves the retries
    /// granted and not given back in the window ending then within the
    /// allowance of the requests really made in it. `shared: false` is the
    /// control: each worker keeps a window of its own, and the same check
    /// catches the overspending.
    fn leased_grants_stay_within(shared: bool) -> Result<(usize, usize), String> {
        let config = BudgetConfig { ratio_permille: 200, min_per_second: 2, window_ms: 10_000 };
        let mut next = filter_common::test_rng::xorshift(0x0001_EA5E_0FB0_D6E7);
        let workers = 3;
        let mut windows = vec![Window::default(); if shared { 1 } else { workers }];
        let mut leases = vec![Lease::default(); workers];
        // In flight: (worker, tick, granted).
        let mut flight: Vec<(usize, u64, u32)> = Vec::new();
        // Truth by tick: requests, and retries granted and not given back.
        let (mut requests, mut spent) = (vec![0u64; 80], vec![0u64; 80]);
        let (mut tick, mut grants, mut refused) = (0u64, 0, 0);
        while tick < 60 {
            match next() % 10 {
                0 => tick += 1,
                1..=5 => {
                    let worker = (next() % workers as u64) as usize;
                    let wanted = (next() % 4) as u32;
                    let w = &mut windows[if shared { 0 } else { worker }];
                    let lease = &mut leases[worker];
                    let granted = lease.grant(tick, wanted).unwrap_or_else(|| w.deposit_leasing(&config, tick, wanted, lease));
                    requests[tick as usize] += 1;
                    spent[tick as usize] += u64::from(granted);
                    grants += usize::from(granted > 0);
                    refused += usize::from(wanted > 0 && granted == 0);
                    let from = tick.saturating_sub(BUCKETS as u64 - 1) as usize;
                    let (q, r) = (requests[from..=tick as usize].iter().sum(), spent[from..=tick as usize].iter().sum::<u64>());
                    // Only a grant is checked: the window sliding on can
                    // leave earlier grants over what its requests allow.
                    if granted > 0 && r > config.allowance(q) {
                        return Err(format!("tick {tick}: {r} retries granted for {q} requests"));
                    }
                    flight.push((worker, tick, granted));
                }
                _ if !flight.is_empty() => {
                    let (worker, at, granted) = flight.swap_remove((next() % flight.len() as u64) as usize);
                    let made = if granted == 0 { 0 } else { (next() % u64::from(granted + 1)) as u32 };
                    let g = Giveback { tick: at, retries: granted - made };
                    spent[at as usize] -= u64::from(g.retries);
                    if !leases[worker].give_back(g) {
                        windows[if shared { 0 } else { worker }].give_back(g);
                    }
                }
                _ => {}
            }
        }
        Ok((grants, refused))
    }

    #[test]
    fn workers_granting_from_leases_stay_within_one_budget() {
        let (grants, refused) = leased_grants_stay_within(true).unwrap();
        assert!(grants > 100 && refused > 50, "{grants} grants, {refused} refused: the budget was not both used and spent");
        assert!(leased_grants_stay_within(false).is_err(), "the control: three budgets overspend one");
    }

    #[test]
    fn a_lease_grants_in_its_bucket_and_settles_into_the_window() {
        let mut w = Window::default();
        let mut lease = Lease::default();
        assert_eq!(lease.grant(0, 0), None, "no lease yet");
        assert_eq!(w.deposit_leasing(&DEFAULT, 0, 3, &mut lease), 3);
        // 100 allowed, 3 granted: an eighth of the 97 left is leased.
        assert_eq!(w.totals(0), (1, 3 + 12));
        assert_eq!(lease.grant(0, 3), Some(3));
        assert_eq!(lease.grant(0, 3), Some(3));
        assert_eq!(lease.grant(1, 3), None, "another bucket");
        assert!(lease.give_back(Giveback { tick: 0, retries: 3 }));
        assert!(!lease.give_back(Giveback { tick: 1, retries: 3 }), "another bucket's reservation goes to the window");
        lease.settle(&mut w);
        assert_eq!(w.totals(0), (3, 3 + 12 - 9), "the two requests are counted, the 9 retries left come back");
        assert_eq!(lease, Lease::default());
        // A lease never takes more than its cap, and nothing when nothing is left.
        let rich = BudgetConfig { ratio_permille: 1000, min_per_second: 1000, window_ms: 10_000 };
        let mut w = Window::default();
        w.deposit_leasing(&rich, 0, 0, &mut lease);
        assert_eq!(w.totals(0), (1, LEASE_MAX));
        let none = BudgetConfig { ratio_permille: 0, min_per_second: 0, window_ms: 10_000 };
        let mut w = Window::default();
        assert_eq!(w.deposit_leasing(&none, 0, 3, &mut lease), 0);
        assert_eq!(lease.grant(0, 1), None);
        assert_eq!(lease.grant(0, 0), Some(0), "a request that wants none is served from an empty lease");
    }

    /// Shared data where another worker writes between this worker's read
    /// and its write, `conflicts` times.
    struct Contended {
        host: MockHost,
        conflicts: Cell<usize>,
        writes: RefCell<Vec<u32>>,
    }

    impl SharedData for Contended {
        fn get(&self, key: &str) -> HostResult<(Option<Vec<u8>>, u32)> {
            self.host.shared_data(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: u32) -> HostResult<()> {
            if self.conflicts.get() > 0 {
                self.conflicts.set(self.conflicts.get() - 1);
                // The other worker deposits a request with one retry.
                let (bytes, their_cas) = self.host.shared_data(key)?;
                let mut theirs = Window::decode(bytes.as_deref());
                theirs.deposit(&DEFAULT, 0, 1);
                self.host.set_shared_data(key, &theirs.encode(), their_cas)?;
            }
            self.writes.borrow_mut().push(cas);
            self.host.set_shared_data(key, value, cas)
        }
    }

    #[test]
    fn a_lost_compare_and_swap_is_tried_again_on_the_new_value() {
        let store = Contended { host: MockHost::new(), conflicts: Cell::new(0), writes: RefCell::new(Vec::new()) };
        update(&store, "budget", |w| w.deposit(&DEFAULT, 0, 0)).unwrap();
        store.conflicts.set(3);
        let granted = update(&store, "budget", |w| w.deposit(&DEFAULT, 0, 2)).unwrap();
        assert_eq!(granted, 2);
        assert_eq!(store.writes.borrow().len(), 5, "one write, then three lost and one won");
        let (bytes, _) = store.host.shared_data("budget").unwrap();
        // Ours: 2 requests, 2 retries; theirs: 3 requests, 3 retries; none lost.
        assert_eq!(Window::decode(bytes.as_deref()).totals(0), (5, 5));
    }

    #[test]
    fn endless_conflicts_give_up_with_an_error() {
        let store = Contended { host: MockHost::new(), conflicts: Cell::new(usize::MAX), writes: RefCell::new(Vec::new()) };
        store.host.set_shared_data("budget", &Window::default().encode(), 0).unwrap();
        let err = update(&store, "budget", |w| w.deposit(&DEFAULT, 0, 1)).unwrap_err();
        assert!(err.is_cas_mismatch());
        assert_eq!(store.writes.borrow().len(), CAS_TRIES);
    }
}
