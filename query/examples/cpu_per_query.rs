//! CPU time per query (utime + stime from /proc/self/stat, so other load on the machine does not
//! inflate it) for the bench queries over a synthetic lineitem-like table.
//! `cargo run --release -p quarry-query --example cpu_per_query -- [rows] [runs] [query name]`

#[path = "../benches/support/lineitem.rs"]
mod lineitem;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" of the command name: utime is field 14, stime 15 (1-based).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000_000);
    let runs: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let only = args.next();
    let file = lineitem::build(rows);
    for (name, q) in lineitem::QUERIES {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut samples = Vec::new();
        for _ in 0..runs {
            let t = cpu_seconds();
            let mut n = 0;
            for _ in 0..3 {
                n += lineitem::run(&file, q);
            }
            samples.push((cpu_seconds() - t) / 3.0);
            assert!(n > 0);
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.1} ms CPU over {runs} runs",
            samples[runs / 2] * 1000.0
        );
    }
}
