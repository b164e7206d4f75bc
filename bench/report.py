#!/usr/bin/env python3
"""Turns results.json into results.md (tables) and PNG plots beside it; keeps the history of the
headline figures in history.json beside it and writes their table (range over runs) into
results.md and, for docs/bench, into the README.

    bench/.venv/bin/python bench/report.py [docs/bench/results.json] [--record SECTION ...]

--record appends the named sections of results.json to history.json (bench/run.sh passes the
sections it just measured); without it the history is only read.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qbench import history  # noqa: E402
from qbench.common import DOCS, ROOT, load_json  # noqa: E402

SYSTEM_COLOURS = {
    "quarry": "#1b7f5f", "quarry-etl": "#1b7f5f", "fixed_body": "#8c8c8c", "nginx": "#3a6ea5",
    "nginx_cold": "#7ea6d4", "datasette": "#c77c2e", "polars": "#6a4fb3", "duckdb": "#c9a227",
}
WORKLOAD_TITLES = {
    "lookup": "point lookup", "scan_limit_100": "filtered scan, limit 100",
    "raw_column_1mib": "raw column, 1 MiB",
}


def num(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def med(s, digits=0):
    """'median [min-max]' of a summary."""
    if not s:
        return "-"
    if len(s.get("runs", [])) <= 1:
        return num(s["median"], digits)
    return f"{num(s['median'], digits)} [{num(s['min'], digits)}-{num(s['max'], digits)}]"


def x(r, digits=2):
    return "-" if r is None else f"{r:.{digits}f}x"


def server_rows(results):
    lines = [
        "| workload | system | body bytes | req/s | p50 ms | p99 ms | server CPU us/req | "
        "CPU vs fixed_body | req/s vs nginx | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    order = list(WORKLOAD_TITLES)
    systems = list(SYSTEM_COLOURS)
    for r in sorted(results, key=lambda r: (
        order.index(r["workload"]) if r["workload"] in order else 99,
        systems.index(r["system"]) if r["system"] in systems else 99,
    )):
        ratios = r.get("ratios", {})
        cpu_vs = x(ratios.get("fixed_body", {}).get("cpu_us_per_req"))
        rps_vs = x(ratios.get("nginx", {}).get("rps"))
        errors = str(r.get("errors", "-"))
        if r.get("requests") and r.get("errors", 0) > 0.01 * r["requests"]:
            # Error answers are cheap: speed figures of such a run mean nothing.
            cpu_vs = rps_vs = "n/a (errors)"
            errors = f"**{r['errors']} of {r['requests']}**"
        if r.get("statuses") and set(r["statuses"]) != {"200"}:
            errors += " (statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())) + ")"
        failed = " (failed: %s)" % r["failed"][0][:100].replace("|", "/") if r.get("failed") else ""
        lines.append(
            f"| {WORKLOAD_TITLES.get(r['workload'], r['workload'])} | {r['system']}{failed} | "
            f"{num(r.get('body_bytes'))} | {med(r['rps'])} | {med(r['p50_ms'], 3)} | "
            f"{med(r['p99_ms'], 3)} | {med(r['cpu_us_per_req'], 2)} | {cpu_vs} | {rps_vs} | "
            f"{errors} |"
        )
    return lines


def machine_lines(doc):
    m = doc.get("machine", {})
    v = m.get("versions", {})
    peers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    return [
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores ({m.get('hypervisor') or 'bare metal'} "
        f"guest), {m.get('memory_gib')} GiB, {m.get('os')}, kernel {m.get('kernel')}, io_uring "
        f"{m.get('io_uring')}; load average at start {', '.join(f'{a:.2f}' for a in m.get('loadavg_at_start', []))}.",
        f"- {m.get('pinning')}.",
        f"- Quarry commit {m.get('quarry_commit')}; {peers}.",
    ]


def _find(results, workload, system):
    return next((r for r in results or [] if r.get("workload") == workload and r.get("system") == system), None)


def _valid(r):
    return r and not (r.get("requests") and r.get("errors", 0) > 0.01 * r["requests"])


def targets(doc):
    """The issues' targets with this run's figures: (measure, result, target, met or None)."""
    sec = doc.get("sections", {})
    rows = []
    etl = {(r["system"], r["threads"]): r for r in sec.get("etl", {}).get("results", [])}
    q2 = etl.get(("quarry-etl", 2))
    if q2:
        ra = q2.get("ratios", {})
        v = ra.get("throughput_vs_polars")
        rows.append(("ETL throughput vs Polars, 2 threads", x(v), ">= 1.2x", None if v is None else v >= 1.2))
        v = ra.get("speedup_2_vs_1_thread")
        rows.append(("ETL speed-up, 2 threads vs 1", x(v), ">= 1.8x", None if v is None else v >= 1.8))
    srv = sec.get("server", {}).get("results")
    for w, title in (("lookup", "point lookup"), ("scan_limit_100", "filtered scan, limit 100")):
        q = _find(srv, w, "quarry")
        if not q:
            continue
        ok = _valid(q)
        v = q.get("ratios", {}).get("fixed_body", {}).get("cpu_us_per_req")
        if w == "lookup":
            rows.append((f"{title}: server CPU/request vs fixed_body", x(v), "<= 1.25x",
                         None if v is None or not ok else v <= 1.25))
        else:
            rows.append((f"{title}: server CPU/request vs fixed_body", x(v), "report", None))
        v = q.get("ratios", {}).get("nginx", {}).get("rps")
        rows.append((f"{title}: req/s vs nginx static", x(v), ">= 1.0x" if w == "lookup" else "report",
                     None if v is None or not ok or w != "lookup" else v >= 1.0))
        p99 = q.get("p99_ms")
        rows.append((f"{title}: p99", f"{med(p99, 3)} ms" if p99 else "-", "<= 1 ms" if w == "lookup" else "report",
                     None if not p99 or not ok or w != "lookup" else p99["median"] <= 1.0))
        v = q.get("ratios", {}).get("datasette", {}).get("rps")
        if v:
            rows.append((f"{title}: req/s vs Datasette", x(v, 1), "report", None))
    ana = sec.get("analytics", {})
    for r in ana.get("aggregations") if isinstance(ana.get("aggregations"), list) else []:
        v = r["ratios"]["vs_duckdb_native"]
        good = r["check"] == "ok"
        targeted = r["query"] in ("q6_like", "q1_like")
        rows.append((f"{r['query']} over HTTP vs DuckDB threads=1 native" + ("" if good else f" ({r['check'][:40]})"),
                     x(v), "<= 1.0x" if targeted else "report",
                     None if v is None or not good or not targeted else v <= 1.0))
    raw = ana.get("raw_column") if isinstance(ana.get("raw_column"), list) else []
    q = _find(raw, "raw_column_1mib", "quarry")
    if q:
        v = q.get("ratios", {}).get("nginx", {}).get("rps")
        rows.append(("raw column 1 MiB: req/s vs nginx static", x(v), ">= 1.0x",
                     None if v is None or not _valid(q) else v >= 1.0))
        v = q.get("ratios", {}).get("nginx_cold", {}).get("rps")
        if v is not None:
            rows.append(("raw column 1 MiB: req/s vs nginx over 64 distinct files (same data temperature)",
                         x(v), "report", None))
    lua = ana.get("lookup_under_aggregation")
    if lua and not lua.get("failed") and lua["lookup_with_aggregations"].get("p99_ms"):
        p99 = lua["lookup_with_aggregations"]["p99_ms"]
        if _valid(lua["lookup_with_aggregations"]):
            rows.append(("point-lookup p99 while aggregations run", f"{med(p99, 3)} ms", "<= 2 ms",
                         p99["median"] <= 2.0))
        else:
            e = lua["lookup_with_aggregations"]
            rows.append(("point-lookup p99 while aggregations run",
                         f"n/a: {e['errors']:,} of {e['requests']:,} lookups were errors", "<= 2 ms", False))
    sw = ana.get("swap_under_load")
    if sw and not sw.get("failed"):
        c = sw["checker"]
        bad = sw["wrk_errors"] + c["non_200"] + c["mixed"] + c["etag_conflicts"]
        rows.append((f"data swaps under load ({sw['swaps']} swaps): failed or mixed answers", str(bad),
                     "0", sw["ok"]))
    return rows


def load_note(section):
    la = section.get("loadavg_at_end")
    return f"; 1-min load average at its end {la[0]:.2f}, of which the benchmark itself is 1-2" if la else ""


def write_markdown(doc, out: Path):
    sec = doc.get("sections", {})
    lines = [
        "# Quarry benchmark results",
        "",
        f"Made by `{doc.get('command')}` at {doc.get('generated_at')}"
        + (" in QUICK mode (small scale, short runs: for smoke tests only)" if doc.get("quick") else "")
        + ". Regenerate the tables and plots from `results.json` with "
        "`bench/.venv/bin/python bench/report.py`.",
        "",
        *machine_lines(doc),
        *(["- **Noisy run**: the machine was busy with other work when this run started (1-min load "
           f"average {doc['machine']['loadavg_at_start'][0]:.1f} on 2 cores), so absolute figures are "
           "low and spreads wide; re-run `bench/run.sh` on an idle machine for figures to quote."]
          if doc.get("machine", {}).get("loadavg_at_start", [0])[0] > 3 else []),
        "- Each figure is the median of the repetitions, with [min-max]; ratios compare systems "
        "measured in the same section run.",
        "",
    ]
    rows = targets(doc)
    if rows:
        lines += ["## Against the targets", "", "| measure | this run | target | met |",
                  "| --- | ---: | ---: | :---: |"]
        for measure, result, target, met in rows:
            mark = "-" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {measure} | {result} | {target} | {mark} |")
        lines += [""]
    etl = sec.get("etl")
    if etl:
        lines += ["## ETL: CSV to a columnar file", ""]
        if etl.get("failed"):
            lines += [f"Failed: `{etl['failed']}`", ""]
        else:
            lines += [
                f"Input: {etl['input']['file']}, {etl['input']['bytes'] / 1e6:,.0f} MB, in the page "
                f"cache. {etl['timing']}. Each process pinned to as many cores as threads "
                f"(run at {etl.get('run_at')}{load_note(etl)}).",
                "",
                "| system | threads | seconds | MB/s | vs Polars | vs DuckDB | speed-up 2 vs 1 thread "
                "| peak RSS MB | output MB |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for r in sorted(etl["results"], key=lambda r: (r["threads"], r["system"] != "quarry-etl", r["system"])):
                ra = r.get("ratios", {})
                failed = " (failed: %s)" % r["failed"][0][-100:].replace("|", "/") if r.get("failed") else ""
                lines.append(
                    f"| {r['system']}{failed} | {r['threads']} | {med(r['seconds'], 2)} | {med(r['mb_per_s'])} | "
                    f"{x(ra.get('throughput_vs_polars'))} | {x(ra.get('throughput_vs_duckdb'))} | "
                    f"{x(ra.get('speedup_2_vs_1_thread'))} | {num(r['peak_rss_mb']['median'] if r.get('peak_rss_mb') else None)} | "
                    f"{num((r.get('output_bytes') or 0) / 1e6) if r.get('output_bytes') else '-'} |"
                )
            lines += ["", "Targets (issue 3): throughput >= 1.2x Polars at 2 threads; 2-thread speed-up "
                      ">= 1.8x.", "", "![ETL throughput](etl.png)", ""]
        lines += parquet_lines(etl.get("parquet"))
    srv = sec.get("server")
    if srv:
        lines += ["## Server: one core, point lookups and a filtered scan", ""]
        if srv.get("failed"):
            lines += [f"Failed: `{srv['failed']}`", ""]
        else:
            lines += [f"Load: {srv['load']} (run at {srv.get('run_at')}{load_note(srv)}).", ""]
            lines += [f"- `{k}`: {v}" for k, v in srv["workloads"].items()]
            lines += [
                "- `fixed_body`: hyper on monoio answering a fixed body of the same size "
                "(`server/examples/fixed_body.rs`): the one-core HTTP floor.",
                "- `nginx`: one process serving a static file of the same size.",
                "- `datasette`: Datasette serving the same orders from SQLite (immutable), row JSON.",
                "",
                *server_rows(srv["results"]),
                "",
                "Targets (issue 4): lookup CPU per request <= 1.25x fixed_body; req/s >= nginx; "
                "p99 <= 1 ms.",
                "",
                "![Throughput](throughput.png)",
                "![p99 latency](p99.png)",
                "![Server CPU per request](cpu_per_request.png)",
                "",
            ]
    ana = sec.get("analytics")
    if ana:
        lines += ["## Analytics: aggregations, raw columns, lookups beside aggregations", ""]
        if ana.get("failed"):
            lines += [f"Failed: `{ana['failed']}`", ""]
        aggs = ana.get("aggregations")
        if isinstance(aggs, list):
            lines += [
                f"{ana.get('notes', '')} (run at {ana.get('run_at')}{load_note(ana)})",
                "",
                "| query | Quarry over HTTP ms | DuckDB native ms | DuckDB Parquet ms | vs native | "
                "vs Parquet | same answer as DuckDB |",
                "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
            for r in aggs:
                lines.append(
                    f"| {r['query']} | {med(r['quarry_http_ms'], 1)} | {med(r['duckdb_native_ms'], 1)} | "
                    f"{med(r['duckdb_parquet_ms'], 1)} | {x(r['ratios']['vs_duckdb_native'])} | "
                    f"{x(r['ratios']['vs_duckdb_parquet'])} | {r['check']} |"
                )
            lines += ["", "Target (issue 5): <= 1.0x DuckDB native for q6_like and q1_like; "
                      "group_by_part (200,000 groups) is reported.", ""]
            lines += ["Queries:", ""]
            for r in aggs:
                lines += [f"- {r['query']}: `GET {r['path']}`", f"  vs `{r['sql']}`"]
            lines += [""]
        elif aggs:
            lines += [f"Aggregations failed: `{aggs.get('failed')}`", ""]
        raw = ana.get("raw_column")
        if isinstance(raw, list):
            lines += ["Raw column reads (`/columns/l_extendedprice?offset=R&limit=131072`, random R):", "",
                      *server_rows(raw), "",
                      "`nginx` serves one 1 MiB file, which stays in the L3 cache; `nginx_cold` serves "
                      "64 distinct 1 MiB files in random order, like ranges of a column larger than the "
                      "cache. The load generator copies every byte out of the socket on the other core, "
                      "so the temperature of the data shows in req/s.",
                      "", "Target (issue 5): req/s >= 1.0x nginx.", ""]
        elif raw:
            lines += [f"Raw column failed: `{raw.get('failed')}`", ""]
        lua = ana.get("lookup_under_aggregation")
        if lua and not lua.get("failed"):
            a, l = lua["lookup_alone"], lua["lookup_with_aggregations"]
            agg_err = lua.get("aggregation_errors")
            lines += [
                "Point lookups while 2 other connections run Q6-like and Q1-like back to back:",
                "",
                "| lookups | req/s | p50 ms | p99 ms | lookup errors | aggregations/s | aggregation errors |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
                f"| alone | {med(a['rps'])} | {med(a['p50_ms'], 3)} | {med(a['p99_ms'], 3)} | "
                f"{a['errors']:,} of {a['requests']:,} | - | - |",
                f"| with aggregations | {med(l['rps'])} | {med(l['p50_ms'], 3)} | {med(l['p99_ms'], 3)} | "
                f"{l['errors']:,} of {l['requests']:,} | {med(lua['aggregations_per_s'], 2)} | "
                f"{', '.join(f'{e:,}' for e in agg_err) if agg_err else '-'} |",
                "",
                "Errors are non-2xx answers or socket errors counted by wrk; where they are more than 1% "
                "of the requests, the latency and rate figures describe error answers and claim nothing.",
                "",
                f"p99 with aggregations vs alone: {x(lua['ratios']['p99_vs_alone'])}. "
                "Target (issue 5): p99 <= 2 ms.",
                "",
            ]
        elif lua:
            lines += [f"Lookup under aggregation failed: `{lua.get('failed')}`", ""]
        sw = ana.get("swap_under_load")
        if sw and not sw.get("failed"):
            c = sw["checker"]
            lines += [
                f"Data swaps under load: {sw['swaps']} publications (rename over `swap.qry` + SIGHUP, "
                f"alternating two versions of a 100,000-row dataset every 0.5 s) during {sw['seconds']} s "
                f"of lookups: wrk {sw['wrk_requests']:,} requests, {sw['wrk_errors']} errors, p99 "
                f"{sw['wrk_p99_ms']:.3f} ms; a checker saw {c['A']:,} answers of version A, {c['B']:,} of "
                f"B, {c['mixed']} mixed, {c['non_200']} non-200, {c['etag_conflicts']} ETag conflicts: "
                f"**{'ok' if sw['ok'] else 'FAILED'}**.",
                "",
            ]
        elif sw:
            lines += [f"Data swap under load failed: `{sw.get('failed')}`", ""]
    out.write_text("\n".join(lines) + "\n")


def human(v):
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e4:
        return f"{v / 1e3:.3g}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def _label(r):
    """System name, flagged when more than 1% of its requests failed (non-2xx or socket errors)."""
    if r.get("requests") and r.get("errors", 0) > 0.01 * r["requests"]:
        return f"{r['system']}\n({100 * r['errors'] / r['requests']:.0f}% errors)"
    return r["system"]


def _bars(ax, labels, summaries, colours, ylabel, title):
    meds = [s["median"] if s else 0 for s in summaries]
    lo = [s["median"] - s["min"] if s else 0 for s in summaries]
    hi = [s["max"] - s["median"] if s else 0 for s in summaries]
    bars = ax.bar(range(len(labels)), meds, yerr=[lo, hi], capsize=3, color=colours)
    positive = [m for m in meds if m > 0]
    if positive and max(positive) > 20 * min(positive):
        ax.set_yscale("log")  # e.g. Datasette next to the others: keep the small bars readable
        ylabel += ", log scale"
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    for b, m in zip(bars, meds):
        if m:
            ax.annotate(human(m), (b.get_x() + b.get_width() / 2, m), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")


def _plt():
    """matplotlib, imported only to draw (the history and tables need only the standard library)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def server_plots(doc, out_dir: Path):
    plt = _plt()
    results = list(doc.get("sections", {}).get("server", {}).get("results", []))
    raw = doc.get("sections", {}).get("analytics", {}).get("raw_column")
    if isinstance(raw, list):
        results += raw
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    if not workloads:
        return []
    written = []
    for metric, ylabel, fname in (
        ("rps", "requests/s (higher is better)", "throughput.png"),
        ("p99_ms", "p99 latency, ms (lower is better)", "p99.png"),
        ("cpu_us_per_req", "server CPU us per request (lower is better)", "cpu_per_request.png"),
    ):
        fig, axes = plt.subplots(1, len(workloads), figsize=(3.4 * len(workloads), 3.2), squeeze=False)
        for ax, w in zip(axes[0], workloads):
            rs = [r for r in results if r["workload"] == w and r.get(metric)]
            _bars(ax, [_label(r) for r in rs], [r[metric] for r in rs],
                  [SYSTEM_COLOURS.get(r["system"], "#555555") for r in rs], ylabel,
                  WORKLOAD_TITLES.get(w, w))
        fig.suptitle(f"One server core, {doc['sections'].get('server', {}).get('settings', {}).get('connections', 64)}"
                     " connections (median, min-max)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        written.append(fname)
    return written


def parquet_lines(pq):
    """The Parquet ETL table (issue 17), or nothing when the section has none."""
    if not pq:
        return []
    lines = ["## ETL: Parquet to a columnar file", ""]
    if pq.get("failed"):
        return lines + [f"Failed: `{pq['failed']}`", ""]
    lines += [f"Input: {pq['input']['file']}, {pq['input']['bytes'] / 1e6:,.0f} MB. {pq['timing']}.", "",
              "| system | threads | seconds | quarry-etl speed vs this system | CPU s per GB | peak RSS MB |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    q = next((r for r in pq["results"] if r["system"] == "quarry-etl"), {})
    for r in pq["results"]:
        vs = x(q.get("ratios", {}).get(f"speed_vs_{r['system']}")) if r is not q else "-"
        cpu = r.get("cpu_s_per_gb")
        lines.append(f"| {r['system']} | {r['threads']} | {med(r['seconds'], 2)} | {vs} | "
                     f"{med(cpu, 1) if cpu else '-'} | "
                     f"{num(r['peak_rss_mb']['median'] if r.get('peak_rss_mb') else None)} |")
    return lines + ["", "Target (issue 17): quarry-etl at least 1.2x the faster peer.", ""]


def etl_plot(doc, out_dir: Path):
    etl = doc.get("sections", {}).get("etl", {}).get("results")
    if not etl:
        return []
    plt = _plt()
    systems = list(dict.fromkeys(r["system"] for r in etl))
    threads = sorted({r["threads"] for r in etl})
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        vals, lo, hi = [], [], []
        for t in threads:
            r = next((r for r in etl if r["system"] == s and r["threads"] == t), None)
            m = r["mb_per_s"] if r else None
            vals.append(m["median"] if m else 0)
            lo.append(m["median"] - m["min"] if m else 0)
            hi.append(m["max"] - m["median"] if m else 0)
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(threads))]
        bars = ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, label=s,
                      color=SYSTEM_COLOURS.get(s, "#555555"))
        for b, v in zip(bars, vals):
            if v:
                ax.annotate(human(v), (b.get_x() + b.get_width() / 2, v), ha="center",
                            va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(threads)), [f"{t} thread{'s' if t > 1 else ''}" for t in threads])
    ax.set_ylabel("input MB/s (higher is better)")
    ax.set_title("CSV -> columnar file, TPC-H lineitem (median, min-max)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "etl.png", dpi=110)
    plt.close(fig)
    return ["etl.png"]


def history_lines(hist, quick):
    rows = history.table(hist, quick)
    if len(rows) <= 2:
        return []
    return [
        "## Headline figures over every recorded run",
        "",
        "From `history.json` beside this file: each `bench/run.sh` appends the sections it measured "
        "(commit, time, load average); entries not made by `bench/run.sh` name their source there. "
        "A figure's spread over runs of the same code is the machine, not the code.",
        "",
        *rows,
        "",
    ]


def update_readme(hist, readme: Path):
    """Rewrites the README's headline block from the history (full runs only)."""
    text = readme.read_text()
    new = history.replace_block(text, history.table(hist, quick=False))
    if new != text:
        readme.write_text(new)
        return True
    return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=str(DOCS / "results.json"))
    ap.add_argument("--record", nargs="*", default=[], metavar="SECTION",
                    help="append these sections of results.json to history.json")
    ap.add_argument("--readme", default=None,
                    help="README whose headline block to rewrite (default: the repository's, "
                    "for docs/bench/results.json only)")
    ap.add_argument("--no-plots", action="store_true", help="tables and history only")
    args = ap.parse_args(argv)
    path = Path(args.results)
    doc = load_json(path)
    if doc is None:
        sys.exit(f"report: cannot read {path}")
    out_dir = path.parent
    hist_path = out_dir / "history.json"
    try:
        hist = history.load(hist_path)
    except ValueError as e:
        sys.exit(f"report: {e}")
    sections = [s for part in args.record for s in part.replace(",", " ").split()]
    added = history.record(doc, hist, sections)
    if added:
        history.save(hist_path, hist)
        print(f"report: appended {', '.join(e['section'] for e in added)} to {hist_path}")
    written = [] if args.no_plots else etl_plot(doc, out_dir) + server_plots(doc, out_dir)
    write_markdown(doc, out_dir / "results.md")
    extra = history_lines(hist, bool(doc.get("quick")))
    if extra:
        with open(out_dir / "results.md", "a") as f:
            f.write("\n".join(extra))
    readme = Path(args.readme) if args.readme else (
        ROOT / "README.md" if path.resolve() == (DOCS / "results.json").resolve() else None)
    if readme and not doc.get("quick") and update_readme(hist, readme):
        print(f"report: rewrote the headline figures in {readme}")
    print(f"report: wrote {out_dir / 'results.md'} and {', '.join(written) or 'no plots'}")


if __name__ == "__main__":
    main()
