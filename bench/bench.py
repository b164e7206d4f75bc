#!/usr/bin/env python3
"""Runs the benchmark sections and merges their results into docs/bench/results.json.

    bench/run.sh [etl] [server] [analytics] [report]      (run.sh installs peers and builds first)

Each section replaces its own entry in results.json (with its own timestamp and settings); ratios
are always between systems measured in the same section run.
"""

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from qbench import analytics, data, etl, server
from qbench.common import DOCS, WORK, Config, load_json, log, machine_description

SECTIONS = ("etl", "server", "analytics")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--no-datasette", action="store_true", help="skip the Datasette peer")
    ap.add_argument("--out", help="default: docs/bench/results.json; bench/work/quick/ in QUICK mode")
    ap.add_argument("--command", default="bench/run.sh", help="the command line, for the report")
    args = ap.parse_args()
    cfg = Config.from_env()
    if args.out is None:
        args.out = str((WORK / "quick" if cfg.quick else DOCS) / "results.json")
    log(f"settings: {cfg}")
    data.tpch(cfg)

    results = load_json(Path(args.out)) or {"sections": {}}
    if results.get("quick") != cfg.quick:
        results = {"sections": {}}  # never mix quick and full numbers in one file
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results.update({
        "generated_at": now,
        "command": args.command,
        "quick": cfg.quick,
        "machine": machine_description(cfg),
    })
    settings = {
        "tpch_scale": cfg.scale, "reps": cfg.reps, "wrk_duration_s": cfg.duration_s,
        "connections": cfg.connections, "query_runs": cfg.query_runs,
    }
    failed = []
    for section in args.sections:
        log(f"=== section {section}")
        try:
            if section == "etl":
                body = etl.run(cfg)
            elif section == "server":
                body = server.run(cfg, with_datasette=not args.no_datasette)
            else:
                body = analytics.run(cfg)
        except Exception as e:  # noqa: BLE001 - keep the other sections' results
            log(f"section {section} failed: {e!r}")
            body = {"failed": repr(e)[:1000]}
            failed.append(section)
        body["run_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        body["settings"] = settings
        body["loadavg_at_end"] = os.getloadavg()  # other work on the machine makes noise
        results["sections"][section] = body
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.out)
    log(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
