//! Envoy's memory, read from `/proc`: its resident set, and its Wasm linear
//! memories. V8 reserves address space for each Wasm memory (gigabytes:
//! the memory's maximum plus guard pages) and makes the part in use
//! readable and writable, which splits the reservation in two mappings: the
//! `rw-p` linear memory, followed at once by the `---p` rest, far larger
//! than anything else Envoy maps. Each such pair is one VM's memory: the
//! size of its first half is the linear memory's size (64 KiB pages, it
//! only grows), its resident pages what it really uses.

use std::fs;
use std::time::Duration;

/// An inaccessible mapping this large is the rest of a Wasm memory reservation.
const RESERVATION_MIN_KB: u64 = 1024 * 1024;

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    pub rss_kb: u64,
    /// The Wasm linear memories' size, all VMs together.
    pub wasm_kb: u64,
    /// Their resident part.
    pub wasm_rss_kb: u64,
    /// Live Wasm memories (one per VM).
    pub wasm_memories: u64,
}

/// Reads the process's memory now; zeros for what cannot be read.
pub fn sample(pid: u32, at: Duration) -> Sample {
    let rss_kb = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(kb))
        .unwrap_or(0);
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let wasm = wasm_memories(&smaps);
    Sample { at, rss_kb, wasm_kb: wasm.size_kb, wasm_rss_kb: wasm.rss_kb, wasm_memories: wasm.count }
}

/// The kB figure of a `/proc` line such as `Rss:   1234 kB`.
fn kb(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    writable: bool,
    inaccessible: bool,
    size_kb: u64,
    rss_kb: u64,
}

/// `7f00-7f10 rw-p …`: a mapping's header line.
fn header(line: &str) -> Option<Mapping> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let perms = parts.next()?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        writable: perms.starts_with("rw"),
        inaccessible: perms.starts_with("---"),
        ..Mapping::default()
    })
}

fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        if let Some(m) = header(line) {
            out.push(m);
        } else if let Some(m) = out.last_mut() {
            if line.starts_with("Size:") {
                m.size_kb = kb(line).unwrap_or(0);
            } else if line.starts_with("Rss:") {
                m.rss_kb = kb(line).unwrap_or(0);
            }
        }
    }
    out
}

#[derive(Debug, Default, PartialEq, Eq)]
struct WasmMemories {
    size_kb: u64,
    rss_kb: u64,
    count: u64,
}

fn wasm_memories(smaps: &str) -> WasmMemories {
    let all = mappings(smaps);
    let mut found = WasmMemories::default();
    for pair in all.windows(2) {
        let [memory, rest] = pair else { continue };
        if rest.inaccessible && rest.size_kb >= RESERVATION_MIN_KB && memory.writable && memory.end == rest.start {
            found.size_kb += memory.size_kb;
            found.rss_kb += memory.rss_kb;
            found.count += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_mapping_right_before_a_huge_reservation_is_a_wasm_memory() {
        let smaps = "1000-2000 rw-p 0 00:00 0\nSize: 4 kB\nRss: 4 kB\n\
                     7f00000000-7f00110000 rw-p 0 00:00 0\nSize: 1088 kB\nRss: 68 kB\n\
                     7f00110000-7200000000 ---p 0 00:00 0\nSize: 8387520 kB\nRss: 0 kB\n\
                     7300000000-7300010000 rw-p 0 00:00 0\nSize: 64 kB\nRss: 64 kB\n\
                     7300020000-7500000000 ---p 0 00:00 0\nSize: 8387520 kB\nRss: 0 kB\n";
        // The second reservation does not follow its writable neighbour at once.
        assert_eq!(wasm_memories(smaps), WasmMemories { size_kb: 1088, rss_kb: 68, count: 1 });
    }
}
