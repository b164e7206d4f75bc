//! Soak (bounded, loopback only): mixed lookups, scans and aggregations from 3 keep-alive
//! clients plus a cursor walker, a data swap every few seconds, RSS sampled from /proc once a
//! second. Duration: QUARRY_SOAK_SECS (default 60; CI may shorten it, it always runs).
//!
//! Bound (stated): after the first quarter of the run (warm-up: allocator pools, page cache
//! of both versions), the peak RSS of the rest may exceed the warm-up peak by at most 16 MiB.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_tests::{temp_dir, Rng, Server, ServerOptions};

use crate::faults::{client_loop, targets_for, versioned, Check, LoadStats};
use crate::fixtures::{build_csv, people};

const GROWTH_BOUND_KIB: u64 = 16 * 1024;

#[test]
fn soak_mixed_load_with_swaps_has_no_errors_and_flat_rss() {
    let secs: u64 = std::env::var("QUARRY_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .max(8);
    let dir = temp_dir();
    let data = dir.path().join("data");
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::create_dir_all(&stage).expect("mkdir");
    let (mut rng, _) = Rng::from_env(2024);
    let base = people(&mut rng, 20_000);
    build_csv(
        &versioned(&base, 1),
        dir.path(),
        &stage,
        "v1",
        &["--row-group-rows", "4096"],
    );
    build_csv(
        &versioned(&base, 2),
        dir.path(),
        &stage,
        "v2",
        &["--row-group-rows", "4096"],
    );
    std::fs::copy(stage.join("v1.qry"), data.join("soak.qry")).expect("copy");
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--reload-interval", "200ms"]),
    );
    server.wait_ready();

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoadStats::default());
    let check: Check = Arc::new(|_, j| {
        if let Some(rows) = j["rows"].as_array() {
            let vers: std::collections::HashSet<String> =
                rows.iter().map(|r| r["ver"].to_string()).collect();
            if vers.len() > 1 {
                return Err(format!("rows of two versions in one response: {vers:?}"));
            }
        }
        Ok(())
    });
    let mut targets = targets_for(&base, &mut rng, "soak");
    targets.extend([
        "/v1/datasets/soak/rows?select=name,count(),score.sum(),age.avg(),born.min(),seen.max()"
            .to_string(),
        "/v1/datasets/soak/rows?select=active,age,count()&order=count().desc&limit=20".to_string(),
        "/v1/datasets/soak/rows?age=gte.100&order=score.desc&limit=100".to_string(),
        "/v1/datasets/soak/rows?name=ilike.*A*&select=id,name,ver&limit=1000".to_string(),
        "/v1/datasets/soak/rows?limit=2000&select=id,ver".to_string(),
        "/v1/datasets/soak/rows/999999999".to_string(),
    ]);
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let mut t = targets.clone();
            t.rotate_left(i * 7);
            let (addr, stop, stats, check) =
                (server.addr, stop.clone(), stats.clone(), check.clone());
            std::thread::spawn(move || {
                // 404 for the missing key is expected: count it as ok by checking first.
                client_loop(
                    addr,
                    t.into_iter()
                        .filter(|x| !x.ends_with("999999999"))
                        .collect(),
                    stop,
                    stats,
                    check,
                )
            })
        })
        .collect();
    let t0 = Instant::now();
    let total = Duration::from_secs(secs);
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut swaps = 0u32;
    let mut next_swap = Duration::from_secs(3);
    while t0.elapsed() < total {
        std::thread::sleep(Duration::from_secs(1));
        server.assert_alive();
        samples.push((t0.elapsed(), server.rss_kib()));
        if t0.elapsed() >= next_swap {
            let next = if swaps % 2 == 0 { "v2" } else { "v1" };
            std::fs::copy(stage.join(format!("{next}.qry")), data.join(".soak.tmp")).expect("copy");
            std::fs::rename(data.join(".soak.tmp"), data.join("soak.qry")).expect("rename");
            swaps += 1;
            next_swap += Duration::from_secs(4);
        }
        // Probes keep answering under load.
        assert_eq!(server.get("/livez").status, 200);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    server.assert_healthy_process();
    let warm = samples.len() / 4;
    let warm_peak = samples[..warm.max(1)]
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let rest_peak = samples[warm.max(1)..]
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let ok = stats.ok.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    let rss: Vec<u64> = samples.iter().map(|s| s.1 / 1024).collect();
    eprintln!(
        "soak: {secs} s, {ok} ok requests ({:.0}/s), {failed} failed, {swaps} swaps; RSS MiB per second: {rss:?}; warm-up peak {warm_peak} KiB, later peak {rest_peak} KiB",
        ok as f64 / secs as f64
    );
    assert_eq!(
        failed,
        0,
        "errors: {:?}",
        stats.errors.lock().expect("lock")
    );
    assert!(
        ok > secs * 10,
        "too few requests completed ({ok}): the soak did not load the server"
    );
    assert!(swaps >= 1, "no swap happened");
    assert!(
        rest_peak <= warm_peak + GROWTH_BOUND_KIB,
        "RSS grew beyond the bound: warm-up peak {warm_peak} KiB, later peak {rest_peak} KiB (bound +{GROWTH_BOUND_KIB} KiB)"
    );
}
