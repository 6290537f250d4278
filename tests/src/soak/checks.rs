//! The soak report's bookkeeping: named bounds that pass or fail with the
//! figures behind them, and printed lines, so the report reads top to
//! bottom and the run fails when any bound does.

use std::fmt::Write as _;

/// One bound and how it came out.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The report being written.
#[derive(Debug, Default)]
pub struct Report {
    text: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn section(&mut self, title: &str) {
        let _ = writeln!(self.text, "\n== {title}");
    }

    pub fn line(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.text, "   {}", line.as_ref());
    }

    /// Records a bound; `detail` gives the figures it was judged on.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let _ = writeln!(self.text, "   [{}] {name}: {detail}", if passed { "ok" } else { "FAIL" });
        self.checks.push(Check { name: name.to_string(), passed, detail });
    }

    /// `actual == expected`, as a check.
    pub fn equal(&mut self, name: &str, actual: u64, expected: u64, why: &str) {
        self.check(name, actual == expected, format!("{actual} (expected {expected}: {why})"));
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50.0), percentile(&v, 99.0), percentile(&v, 100.0)), (50, 99, 100));
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn one_failed_check_fails_the_report() {
        let mut r = Report::default();
        r.equal("a", 1, 1, "same");
        assert!(r.passed());
        r.equal("b", 2, 3, "differ");
        assert!(!r.passed());
        assert_eq!(r.failures().len(), 1);
        assert!(r.text().contains("[FAIL] b: 2 (expected 3: differ)"));
    }
}
