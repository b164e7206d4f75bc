//! Scan and aggregation over a synthetic lineitem-like table (QUARRY_BENCH_ROWS rows, default
//! 6,000,000): a filtered scan with limit 100, a Q6-like filtered sum and a Q1-like group-by.
//! Run: `cargo bench -p quarry-query --bench scan` (not in CI; one core; compare medians).
//! For CPU time unaffected by other load: `cargo run --release --example cpu_per_query`.

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/lineitem.rs"]
mod lineitem;

fn benches(c: &mut Criterion) {
    let rows = std::env::var("QUARRY_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000_000);
    let file = lineitem::build(rows);
    let mut g = c.benchmark_group("lineitem");
    g.sample_size(10);
    for (name, q) in lineitem::QUERIES {
        g.bench_function(name, |b| b.iter(|| lineitem::run(&file, q)));
    }
    g.finish();
}

criterion_group!(scan, benches);
criterion_main!(scan);
