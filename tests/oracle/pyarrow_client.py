#!/usr/bin/env python3
"""Reads a quarry-server rows response as an Arrow IPC stream with pyarrow, the way a dataframe
client does, and prints what it decoded as one JSON object:

    {"pyarrow": VERSION, "schema": [[name, arrow type, nullable], ...], "batches": N,
     "rows": [[v, ...], ...]}

Values: int64 and bool as they are; float64 as numbers, with NaN/inf as the strings "NaN",
"Infinity", "-Infinity" (the server's JSON texts); date32 as days since 1970-01-01 and
timestamp as microseconds since the epoch (the raw Arrow integers, so no time-zone or
formatting code sits between the bytes and the comparison); null as null.

Usage: pyarrow_client.py URL     (exit 2 with a message when pyarrow is missing)
"""
import json
import math
import sys
import urllib.request

try:
    import pyarrow as pa
    import pyarrow.ipc
except ImportError as e:  # a failure the Rust test reports with the fix
    print(json.dumps({"error": f"pyarrow is not installed ({e}); run `python3 -m pip install pyarrow`"}))
    sys.exit(2)

ARROW = "application/vnd.apache.arrow.stream"


def plain(column: pa.ChunkedArray) -> list:
    t = column.type
    if pa.types.is_date32(t):
        return column.cast(pa.int32()).to_pylist()
    if pa.types.is_timestamp(t):
        assert t.unit == "us", f"timestamp unit {t.unit}"
        return column.cast(pa.int64()).to_pylist()
    if pa.types.is_floating(t):
        def text(v):
            if v is None or math.isfinite(v):
                return v
            return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        return [text(v) for v in column.to_pylist()]
    return column.to_pylist()


def main() -> None:
    req = urllib.request.Request(sys.argv[1], headers={"Accept": ARROW})
    with urllib.request.urlopen(req, timeout=30) as resp:
        ctype = resp.headers.get("Content-Type", "")
        body = resp.read()
    if not ctype.startswith(ARROW):
        raise SystemExit(f"expected Content-Type {ARROW}, got {ctype!r}")
    reader = pa.ipc.open_stream(body)
    batches = list(reader)
    table = pa.Table.from_batches(batches, schema=reader.schema)
    columns = [plain(table.column(i)) for i in range(table.num_columns)]
    print(json.dumps({
        "pyarrow": pa.__version__,
        "schema": [[f.name, str(f.type), f.nullable] for f in table.schema],
        "batches": len(batches),
        "rows": [list(r) for r in zip(*columns)] if columns else [],
    }))


if __name__ == "__main__":
    main()
