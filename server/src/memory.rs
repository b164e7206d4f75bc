//! Memory budgets in bytes: what a request holds that grows with the data (a scan's groups,
//! top-k heap and collected rows, `quarry_query::Scan::memory_bytes`) is charged to the
//! request's budget (`--max-request-memory`: past it, 422 `too_much_memory`, enforced by the
//! scan itself) and to the process budget shared by every loop (`--memory-budget`: past it,
//! 503 with `Retry-After`: the request is shed, the pod lives). A page being encoded stays
//! charged until its body is dropped (`Encoder::memory_bytes`), and each encoded frame until
//! hyper has written it ([`charged_frame`]), so a client that stops reading holds its
//! charge until `--write-timeout` closes the connection.
//!
//! The process default comes from the cgroup's limit (`memory.max` on v2,
//! `memory.limit_in_bytes` on v1): half of it, the other half left to the mapped files' page
//! cache (which the cgroup counts too), the runtime and the bounded per-connection buffers.
//! Without a limit: `DEFAULT_BUDGET`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::metrics::Metrics;

/// The process budget when no cgroup limit is found.
pub const DEFAULT_BUDGET: u64 = 1 << 30;
/// A cgroup v1 "limit" at or above this means unlimited (the kernel reports ~2^63).
const V1_UNLIMITED: u64 = 1 << 60;

/// Parses `123`, `64k`, `512M`, `2G`, `1GiB` (binary units: k = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: use e.g. 64MiB, 2G or a byte count"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: use e.g. 64MiB, 2G or a byte count"))?;
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("invalid size {s:?}: must be positive and below 2^64 bytes"))
}

/// This process's cgroup memory limit and where it was read, if there is one.
pub fn cgroup_limit() -> Option<(u64, String)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut candidates = Vec::new();
    for line in own.lines() {
        // v2: "0::/path"; v1: "N:memory:/path" (or "N:memory,...:/path").
        if let Some(path) = line.strip_prefix("0::") {
            candidates.push(format!(
                "/sys/fs/cgroup{}/memory.max",
                path.trim_end_matches('/')
            ));
        } else if let Some((_, rest)) = line.split_once(':') {
            if let Some((ctrl, path)) = rest.split_once(':') {
                if ctrl.split(',').any(|c| c == "memory") {
                    candidates.push(format!(
                        "/sys/fs/cgroup/memory{}/memory.limit_in_bytes",
                        path.trim_end_matches('/')
                    ));
                }
            }
        }
    }
    // Inside a container the own path may not exist under its namespace root: the root files.
    candidates.push("/sys/fs/cgroup/memory.max".to_string());
    candidates.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".to_string());
    candidates.into_iter().find_map(|p| {
        let text = std::fs::read_to_string(&p).ok()?;
        let v: u64 = text.trim().parse().ok()?; // "max" (v2, unlimited) does not parse
        (v < V1_UNLIMITED).then_some((v, p))
    })
}

/// The default process budget and a description of where it came from.
pub fn default_budget() -> (u64, String) {
    match cgroup_limit() {
        Some((limit, path)) => (
            limit / 2,
            format!("half of the cgroup limit {limit} ({path})"),
        ),
        None => (
            DEFAULT_BUDGET,
            "fixed default (no cgroup memory limit)".to_string(),
        ),
    }
}

/// The process budget, shared by every loop.
#[derive(Debug)]
pub struct Budget {
    pub limit: u64,
    charged: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Budget {
    pub fn new(limit: u64, metrics: Arc<Metrics>) -> Arc<Budget> {
        metrics
            .memory_budget
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        Arc::new(Budget {
            limit,
            charged: AtomicU64::new(0),
            metrics,
        })
    }

    fn add(&self, delta: i64) -> u64 {
        let now = if delta >= 0 {
            self.charged.fetch_add(delta as u64, Ordering::Relaxed) + delta as u64
        } else {
            self.charged
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed)
                - delta.unsigned_abs()
        };
        self.metrics
            .memory_charged
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        now
    }
}

/// One request's charge against the process budget; released when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    held: u64,
}

/// The process budget would be exceeded.
#[derive(Debug)]
pub struct OverBudget {
    pub charged: u64,
    pub limit: u64,
}

impl Charge {
    pub fn new(budget: Arc<Budget>) -> Charge {
        Charge { budget, held: 0 }
    }

    /// Sets what the request holds now. Growing past the process budget fails (the charge
    /// stays until the request is dropped, which its caller does at once).
    pub fn set(&mut self, bytes: u64) -> Result<(), OverBudget> {
        let delta = bytes as i128 - self.held as i128;
        let delta = i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN });
        self.held = bytes;
        let now = self.budget.add(delta);
        if delta > 0 && now > self.budget.limit {
            return Err(OverBudget {
                charged: now,
                limit: self.budget.limit,
            });
        }
        Ok(())
    }
}

/// An encoded body frame that holds its charge until dropped: hyper drops a frame once it has
/// written it, so the charge covers the frame while it waits for a slow client's socket.
struct ChargedFrame {
    buf: Vec<u8>,
    _charge: Charge,
}

impl AsRef<[u8]> for ChargedFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

/// `buf` as a frame charged to the process budget for its capacity until it is dropped.
pub fn charged_frame(budget: &Arc<Budget>, buf: Vec<u8>) -> Result<bytes::Bytes, OverBudget> {
    let mut charge = Charge::new(budget.clone());
    charge.set(buf.capacity() as u64)?;
    Ok(bytes::Bytes::from_owner(ChargedFrame {
        buf,
        _charge: charge,
    }))
}

impl Drop for Charge {
    fn drop(&mut self) {
        let held = i64::try_from(self.held).unwrap_or(i64::MAX);
        self.budget.add(-held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("64 parsecs").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn charges_add_up_and_are_released() {
        let budget = Budget::new(1000, Arc::new(Metrics::new()));
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        assert!(a.set(600).is_ok());
        assert!(b.set(300).is_ok());
        assert!(b.set(500).is_err(), "600 + 500 > 1000");
        assert!(a.set(100).is_ok(), "shrinking never fails");
        drop(b);
        drop(a);
        assert_eq!(budget.charged.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_frame_is_charged_until_dropped() {
        let budget = Budget::new(1000, Arc::new(Metrics::new()));
        let mut buf = Vec::with_capacity(600);
        buf.extend_from_slice(b"frame");
        let frame = charged_frame(&budget, buf).expect("fits");
        assert_eq!(budget.charged.load(Ordering::Relaxed), 600);
        assert!(charged_frame(&budget, Vec::with_capacity(600)).is_err());
        assert_eq!(
            budget.charged.load(Ordering::Relaxed),
            600,
            "a refused frame holds nothing"
        );
        let part = frame.slice(1..3);
        drop(frame);
        assert_eq!(
            budget.charged.load(Ordering::Relaxed),
            600,
            "a slice keeps the frame"
        );
        drop(part);
        assert_eq!(budget.charged.load(Ordering::Relaxed), 0);
    }
}
