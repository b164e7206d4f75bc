//! Memory budget: `--memory-limit` parsing, the default, and peak RSS.

use anyhow::Result;

use crate::error::usage;

/// Parses `123`, `64k`, `512M`, `2G`, `1GiB`, `3gb` (units are binary: k = 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(usage(format!(
                "invalid size {s:?}: use e.g. 512M, 2G, 1GiB or a byte count"
            )))
        }
    };
    let n: f64 = num.parse().map_err(|_| {
        usage(format!(
            "invalid size {s:?}: use e.g. 512M, 2G, 1GiB or a byte count"
        ))
    })?;
    if !n.is_finite() || n <= 0.0 {
        return Err(usage(format!("invalid size {s:?}: must be positive")));
    }
    Ok((n * mult as f64) as u64)
}

fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// cgroup v2 `memory.max` of this process's cgroup (or of the namespace root), if limited.
fn cgroup_memory_max() -> Option<u64> {
    let mut candidates = vec![std::path::PathBuf::from("/sys/fs/cgroup/memory.max")];
    if let Ok(cg) = std::fs::read_to_string("/proc/self/cgroup") {
        if let Some(path) = cg.lines().find_map(|l| l.strip_prefix("0::")) {
            candidates.insert(
                0,
                std::path::Path::new("/sys/fs/cgroup")
                    .join(path.trim_start_matches('/'))
                    .join("memory.max"),
            );
        }
    }
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
}

/// Default budget: 25% of the smaller of MemAvailable and the cgroup's memory.max, at least
/// 64 MiB.
pub fn default_limit() -> u64 {
    let avail = meminfo_available().unwrap_or(4 << 30);
    let base = cgroup_memory_max().map_or(avail, |m| m.min(avail));
    (base / 4).max(64 << 20)
}

/// Peak resident set size (VmHWM) in bytes.
pub fn peak_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12x").is_err());
        assert!(parse_size("").is_err());
        assert!(default_limit() >= 64 << 20);
    }
}
