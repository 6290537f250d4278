//! What a test peer received, in arrival order, with a wait for the n-th
//! arrival (mirrored requests land after the client has its answer).

use crate::error::KitError;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct Recorder<T> {
    items: Mutex<Vec<T>>,
    arrived: Condvar,
}

impl<T: Clone> Default for Recorder<T> {
    fn default() -> Self {
        Self { items: Mutex::new(Vec::new()), arrived: Condvar::new() }
    }
}

impl<T: Clone> Recorder<T> {
    /// Records one arrival; returns how many came before it.
    pub fn push(&self, item: T) -> usize {
        let Ok(mut items) = self.items.lock() else { return 0 };
        items.push(item);
        self.arrived.notify_all();
        items.len() - 1
    }

    pub fn all(&self) -> Vec<T> {
        self.items.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` have arrived; `what` names the peer in the error.
    pub fn wait_for(&self, n: usize, timeout: Duration, what: &str) -> Result<Vec<T>, KitError> {
        let poisoned = || KitError::Protocol(format!("{what}: log poisoned"));
        let deadline = Instant::now() + timeout;
        let mut items = self.items.lock().map_err(|_| poisoned())?;
        while items.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KitError::Timeout { what: format!("{what} got {} of {n}", items.len()), log: String::new() });
            }
            items = self.arrived.wait_timeout(items, left).map_err(|_| poisoned())?.0;
        }
        Ok(items.clone())
    }
}
