#!/usr/bin/env python3
"""DuckDB oracle for the differential tests (tests/e2e/differential.rs).

Protocol: one JSON object per stdin line, one JSON object per stdout line.
  {"sql": "..."}                      -> {"columns": [...], "rows": [[v, ...], ...]}
                                         or {"error": "..."}
Values: null, true/false, integers, floats (repr, exact round trip), non-finite floats as
{"float": "NaN"|"Infinity"|"-Infinity"}, dates "YYYY-MM-DD", timestamps
"YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC), strings as strings.
The first line written is {"ready": true, "duckdb": "<version>"} once duckdb is imported.
"""
import datetime
import decimal
import json
import math
import sys


def encode(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return {"float": "NaN"}
        if math.isinf(v):
            return {"float": "Infinity" if v > 0 else "-Infinity"}
        return v
    if isinstance(v, decimal.Decimal):
        return encode(float(v))
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        s = v.strftime("%Y-%m-%dT%H:%M:%S")
        if v.microsecond:
            s += ".%06d" % v.microsecond
        return s + "Z"
    if isinstance(v, datetime.date):
        return "%04d-%02d-%02d" % (v.year, v.month, v.day)
    return str(v)


def main():
    try:
        import duckdb
    except ImportError as e:
        print(json.dumps({"error": "python3 cannot import duckdb (%s): run python3 -m pip install duckdb" % e}), flush=True)
        return 3
    con = duckdb.connect(database=":memory:")
    con.execute("SET threads TO 1")
    con.execute("SET TimeZone = 'UTC'")
    print(json.dumps({"ready": True, "duckdb": duckdb.__version__}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cur = con.execute(req["sql"])
            cols = [d[0] for d in cur.description] if cur.description else []
            rows = [[encode(v) for v in row] for row in cur.fetchall()] if cols else []
            out = {"columns": cols, "rows": rows}
        except Exception as e:  # noqa: BLE001 - every error goes back to the test
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(out, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
