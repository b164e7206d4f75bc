"""The headline figures over many runs: what `bench/run.sh` appends to history.json after each
run, and the README's headline table made from it (range over runs, latest, dates).

One run of one section is one entry of history.json, so `bench/run.sh server` adds a server
entry and leaves the ETL's history alone. An entry is keyed by (section, run_at): recording the
same results.json twice adds nothing. Entries that did not come from a `bench/run.sh` of this
repository say where they came from in `source`.
"""

import json
import os
import re
from pathlib import Path

# (key, section, what it measures, unit, lower is better, what moves it). A section that has no
# row here (a new one) is kept in results.json and simply has no headline figure.
HEADLINES = [
    ("etl_vs_polars", "etl", "ETL, CSV -> columnar file, 2 threads: throughput vs Polars", "x", False,
     "steal time when both vCPUs are busy, the input's page-cache state, writeback of the output, "
     "Polars' version"),
    ("etl_speedup", "etl", "ETL speed-up, 2 threads vs 1", "x", False,
     "the host's steal time whenever both vCPUs run (none with one), the serial tail (final fsync, "
     "verification)"),
    ("lookup_cpu_vs_floor", "server", "point lookup: server CPU per request vs the hyper fixed-body floor",
     "x", True,
     "cache and TLB misses over the mapped file (key search, columns), client wake-ups (an "
     "inter-processor interrupt each, a hypervisor exit without cpuidle), CPU frequency"),
    ("lookup_rps_vs_nginx", "server", "point lookup: req/s vs nginx static", "x", False,
     "the client's wake-ups on the other core, the same misses as CPU per request, machine load"),
    ("lookup_p99_ms", "server", "point lookup: p99 (64 connections, closed loop)", "ms", True,
     "the round of 64 requests x CPU per request (p50), then any stall: other processes on the "
     "server's core, idle peers' timers, hypervisor scheduling"),
    ("scan_cpu_vs_floor", "server", "filtered scan `limit=100`: server CPU per request vs the floor",
     "x", True, "JSON encoding and filtering cost, memory bandwidth shared with other tenants"),
    ("q6_vs_duckdb", "analytics", "Q6-like over HTTP: time vs DuckDB threads=1 native", "x", True,
     "memory bandwidth and cache shared with other tenants, CPU frequency, DuckDB's version"),
    ("q1_vs_duckdb", "analytics", "Q1-like group-by over HTTP: time vs DuckDB threads=1 native", "x", True,
     "memory bandwidth and cache shared with other tenants, CPU frequency, DuckDB's version"),
    ("raw_vs_nginx", "analytics", "raw column read 1 MiB: req/s vs nginx's one hot file", "x", False,
     "whether the bytes are in cache (nginx's one file stays in L3), the client copying every "
     "byte on the other core"),
    ("p99_beside_aggregations_ms", "analytics", "point-lookup p99 while 2 connections run Q6/Q1",
     "ms", True,
     "scan time slices (each lookup waits for a slice of each scan), machine stalls, the "
     "closed loop saturating the core"),
]
# The headline table in README.md sits between these lines.
BEGIN = "<!-- headline figures: made by bench/report.py from docs/bench/history.json -->"
END = "<!-- end of headline figures -->"


def _find(results, workload, system):
    return next((r for r in results or [] if r.get("workload") == workload and r.get("system") == system), None)


def _valid(r):
    """A run whose answers were mostly errors measured error answers: no figure."""
    return bool(r) and not (r.get("requests") and r.get("errors", 0) > 0.01 * r["requests"])


def _median(summary):
    return summary.get("median") if isinstance(summary, dict) else None


def figures(section, body):
    """The headline figures one section's results hold, {key: value}; {} for a failed section."""
    if not isinstance(body, dict) or body.get("failed"):
        return {}
    out = {}
    if section == "etl":
        q2 = next((r for r in body.get("results", [])
                   if r.get("system") == "quarry-etl" and r.get("threads") == 2 and not r.get("failed")), None)
        if q2:
            ra = q2.get("ratios", {})
            out["etl_vs_polars"] = ra.get("throughput_vs_polars")
            out["etl_speedup"] = ra.get("speedup_2_vs_1_thread")
    elif section == "server":
        res = body.get("results")
        q = _find(res, "lookup", "quarry")
        if _valid(q):
            out["lookup_cpu_vs_floor"] = q.get("ratios", {}).get("fixed_body", {}).get("cpu_us_per_req")
            out["lookup_rps_vs_nginx"] = q.get("ratios", {}).get("nginx", {}).get("rps")
            out["lookup_p99_ms"] = _median(q.get("p99_ms"))
        q = _find(res, "scan_limit_100", "quarry")
        if _valid(q):
            out["scan_cpu_vs_floor"] = q.get("ratios", {}).get("fixed_body", {}).get("cpu_us_per_req")
    elif section == "analytics":
        aggs = body.get("aggregations")
        for r in aggs if isinstance(aggs, list) else []:
            key = {"q6_like": "q6_vs_duckdb", "q1_like": "q1_vs_duckdb"}.get(r.get("query"))
            if key and r.get("check") == "ok":
                out[key] = r.get("ratios", {}).get("vs_duckdb_native")
        raw = body.get("raw_column")
        q = _find(raw if isinstance(raw, list) else [], "raw_column_1mib", "quarry")
        if _valid(q):
            out["raw_vs_nginx"] = q.get("ratios", {}).get("nginx", {}).get("rps")
        lua = body.get("lookup_under_aggregation")
        if isinstance(lua, dict) and not lua.get("failed"):
            with_aggs = lua.get("lookup_with_aggregations", {})
            if _valid(with_aggs):
                out["p99_beside_aggregations_ms"] = _median(with_aggs.get("p99_ms"))
    return {k: v for k, v in out.items() if isinstance(v, (int, float))}


def load(path: Path):
    """history.json's document; a missing file is an empty history, a corrupt one an error."""
    if not path.exists():
        return {"runs": []}
    doc = json.loads(path.read_text())
    if not isinstance(doc.get("runs"), list):
        raise ValueError(f"{path}: expected an object with a 'runs' list")
    return doc


def save(path: Path, doc):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def record(results, history, sections, source="bench/run.sh"):
    """Appends one entry per section of `sections` that `results` holds with figures, unless an
    entry with the same (section, run_at) is already there. Returns the entries added."""
    machine = results.get("machine", {})
    have = {(e.get("section"), e.get("run_at")) for e in history["runs"]}
    added = []
    for section in sections:
        body = results.get("sections", {}).get(section)
        figs = figures(section, body)
        if not figs or (section, body.get("run_at")) in have:
            continue
        entry = {
            "section": section,
            "run_at": body.get("run_at"),
            "commit": machine.get("quarry_commit"),
            "command": results.get("command"),
            "quick": bool(results.get("quick")),
            "loadavg_at_start": machine.get("loadavg_at_start"),
            "loadavg_at_end": body.get("loadavg_at_end"),
            "source": source,
            "figures": figs,
        }
        history["runs"].append(entry)
        added.append(entry)
    return added


def _fmt(v, unit):
    return f"{v:.3f} ms" if unit == "ms" else f"{v:.2f}x"


def _day(entry):
    return (entry.get("run_at") or "")[:10] or entry.get("date", "undated")


def table(history, quick=False):
    """The headline table's Markdown lines: per figure the latest value, the range over every
    run that measured it, the number of runs and their dates, and what moves it. QUICK runs and
    full runs are never mixed."""
    lines = [
        "| measure (TPC-H SF1) | latest | range over runs (min-max) | runs | dates | what moves it |",
        "|---|---:|---:|---:|---|---|",
    ]
    # Entries are appended as runs happen, so the file's order is the order of the runs (an entry
    # quoted from elsewhere without a time carries a `date` saying when it was made instead).
    runs = [e for e in history["runs"] if bool(e.get("quick")) == quick]
    for key, _section, what, unit, lower_better, moves in HEADLINES:
        have = [e for e in runs if key in e.get("figures", {})]
        if not have:
            continue
        values = [e["figures"][key] for e in have]
        dates = sorted(dict.fromkeys(_day(e) for e in have))
        better = "lower is better" if lower_better else "higher is better"
        lines.append(
            f"| {what} ({better}) | {_fmt(have[-1]['figures'][key], unit)} | "
            f"{_fmt(min(values), unit)} - {_fmt(max(values), unit)} | {len(have)} | "
            f"{', '.join(dates)} | {moves} |"
        )
    return lines


def replace_block(text, lines):
    """`text` with the lines between BEGIN and END replaced by `lines`."""
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("the headline markers are missing")
    block = BEGIN + "\n" + "\n".join(lines) + "\n" + END
    return pattern.sub(lambda _m: block, text, count=1)
