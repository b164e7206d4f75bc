#!/usr/bin/env python3
"""Writes the Parquet / Arrow IPC fixtures of etl/tests/it/columnar.rs into OUT_DIR.

DuckDB writes one table of every type (nulls in every column but the key) as CSV and as Parquet
with several compressions, row-group sizes and dictionary on/off; pyarrow writes small data
pages and lz4, and the Arrow IPC file/stream/feather files (with dictionary and large strings).
The CSV holds the same values as text the CSV path parses to the same values (float32 as its
exact float64, timestamps with time zone as UTC), so a build from it and from each columnar
file must be byte-identical. Also: a Hive-partitioned directory and small bad inputs.

Usage: make_fixtures.py OUT_DIR   (needs the duckdb and pyarrow packages)
"""
import json
import os
import sys

import duckdb
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

ROWS = 5000

# name, SQL expression over i (0..ROWS), Quarry type, CSV text expression (None: the column)
COLUMNS = [
    ("i8", "(i % 200 - 100)::TINYINT", "int64"),
    ("i16", "(i * 37 % 60000 - 30000)::SMALLINT", "int64"),
    ("i32", "(i * 7919 - 20000000)::INTEGER", "int64"),
    ("i64", "(i::BIGINT * 1000000007 - 2000000000000)", "int64"),
    ("u8", "(i % 250)::UTINYINT", "int64"),
    ("u16", "(i * 13)::USMALLINT", "int64"),
    ("u32", "(i::UBIGINT * 800000)::UINTEGER", "int64"),
    ("u64", "(i::UBIGINT * 1844674407370955)::UBIGINT", "int64"),
    ("f32", "(i / 7.0 - 300)::FLOAT", "float64"),
    ("f64", "(i / 3.0 - 500.25)::DOUBLE", "float64"),
    ("dec9", "((i * 12345) % 10000000 / 100.0 - 30000)::DECIMAL(9,2)", "float64"),
    ("dec18", "(i * 98765.4321 - 1e8)::DECIMAL(18,4)", "float64"),
    ("dec38", "(i::DECIMAL(38,10) * 1234567.0123456789)::DECIMAL(38,10)", "float64"),
    ("b", "(i % 3 = 0)", "bool"),
    ("d", "DATE '1960-01-01' + (i * 5)::INTEGER", "date"),
    ("ts", "TIMESTAMP '1965-06-01 00:00:00' + to_microseconds(i::BIGINT * 987654321)", "timestamp"),
    ("ts_ms", "(TIMESTAMP '1999-12-31 23:00:00' + to_milliseconds(i::BIGINT * 1234567))::TIMESTAMP_MS", "timestamp"),
    ("ts_s", "(TIMESTAMP '1950-01-01 00:00:00' + to_seconds(i::BIGINT * 86399))::TIMESTAMP_S", "timestamp"),
    ("ts_ns", "('1969-12-31 23:59:' || lpad((i % 60)::VARCHAR, 2, '0') || '.' || lpad(((i::BIGINT * 7919 * 104729) % 1000000000)::VARCHAR, 9, '0'))::TIMESTAMP_NS", "timestamp"),
    ("tstz", "(TIMESTAMPTZ '2020-03-01 12:00:00+00' + to_microseconds(i::BIGINT * 3600000123))", "timestamp"),
    ("t", "(TIME '00:00:00' + to_microseconds((i::BIGINT * 17000123) % 86400000000))", "utf8"),
    ("s_dict", "'cat_' || (i % 23)::VARCHAR", "utf8"),
    ("s_uniq", "md5(i::VARCHAR) || ' é,\"q\"'", "utf8"),
]


def select_sql():
    cols = ["i::BIGINT AS id"]
    for k, (name, expr, _) in enumerate(COLUMNS):
        cols.append(f"CASE WHEN (i + {k}) % 11 = 0 THEN NULL ELSE {expr} END AS {name}")
    return f"SELECT {', '.join(cols)} FROM range({ROWS}) r(i)"


def csv_select(cols):
    out = []
    for name in cols:
        if name == "f32":
            out.append("f32::DOUBLE AS f32")
        elif name == "tstz":
            out.append("strftime(tstz, '%Y-%m-%d %H:%M:%S.%fZ') AS tstz")
        else:
            out.append(name)
    return ", ".join(out)


def has_dictionary(path):
    md = pq.ParquetFile(path).metadata
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            if md.row_group(g).column(c).has_dictionary_page:
                return True
    return False


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE t AS {select_sql()}")
    names = ["id"] + [c[0] for c in COLUMNS]
    con.execute(f"COPY (SELECT {csv_select(names)} FROM t ORDER BY id) TO '{out}/all.csv' (HEADER)")
    schema = {
        "fields": [{"name": "id", "type": "int64", "nullable": False}]
        + [{"name": n, "type": ty, "nullable": True} for n, _, ty in COLUMNS],
        "key": "id",
    }
    with open(f"{out}/all.schema.json", "w") as f:
        json.dump(schema, f)

    variants = []
    for codec in ["snappy", "zstd", "gzip", "uncompressed"]:
        for dictionary in ["dict", "plain"]:
            for rg in [1000, 100000]:
                name = f"duckdb_{codec}_{dictionary}_{rg}.parquet"
                opts = f"FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE {rg}"
                if dictionary == "plain":
                    opts += ", DICTIONARY_SIZE_LIMIT 0"
                con.execute(f"COPY (SELECT * FROM t ORDER BY id) TO '{out}/{name}' ({opts})")
                assert has_dictionary(f"{out}/{name}") == (dictionary == "dict"), name
                variants.append(name)

    rel = con.sql("SELECT * FROM t ORDER BY id")
    table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    pq.write_table(table, f"{out}/pyarrow_page512_lz4.parquet", compression="lz4",
                   data_page_size=512, row_group_size=1700, use_dictionary=True)
    pq.write_table(table, f"{out}/pyarrow_page512_plain.parquet", compression="none",
                   data_page_size=512, row_group_size=2500, use_dictionary=False)
    variants += ["pyarrow_page512_lz4.parquet", "pyarrow_page512_plain.parquet"]

    # Arrow IPC: a dictionary-encoded and a large-string column among the rest.
    i = table.schema.get_field_index("s_dict")
    table2 = table.set_column(i, "s_dict", table.column("s_dict").dictionary_encode())
    j = table2.schema.get_field_index("s_uniq")
    table2 = table2.set_column(j, "s_uniq", table2.column("s_uniq").cast(pa.large_string()))
    feather.write_feather(table2, f"{out}/all.feather")  # v2, lz4 by default
    with ipc.new_file(f"{out}/all_zstd.arrow", table2.schema,
                      options=ipc.IpcWriteOptions(compression="zstd")) as w:
        for b in table2.to_batches(max_chunksize=777):
            w.write_batch(b)
    with ipc.new_stream(f"{out}/all.arrows", table2.schema) as w:
        for b in table2.to_batches(max_chunksize=1234):
            w.write_batch(b)
    variants += ["all.feather", "all_zstd.arrow", "all.arrows"]

    # Hive partitions: part=/tag= directories (tag values percent-encoded); the CSV has the
    # partition columns last.
    con.execute("CREATE TABLE h AS SELECT id, s_dict, f64, (id % 4) AS part, "
                "CASE WHEN id % 3 = 0 THEN 'a b/c' ELSE 'x=y%' END AS tag FROM t")
    con.execute(f"COPY h TO '{out}/hive' (FORMAT parquet, PARTITION_BY (part, tag))")
    con.execute(f"COPY (SELECT * FROM h ORDER BY id) TO '{out}/hive.csv' (HEADER)")

    # Bad inputs.
    con.execute(f"COPY (SELECT i AS id, CASE WHEN i = 2345 THEN 18446744073709551615::UBIGINT ELSE i::UBIGINT END AS big FROM range(3000) r(i)) TO '{out}/u64_overflow.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000)")
    con.execute(f"COPY (SELECT i AS id, CASE WHEN i = 1500 THEN NULL ELSE i END AS k FROM range(3000) r(i)) TO '{out}/null_key.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000)")
    con.execute(f"COPY (SELECT CASE WHEN i = 2999 THEN 17 ELSE i END AS k FROM range(3000) r(i)) TO '{out}/dup_key.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000)")
    con.execute(f"COPY (SELECT i AS id, [i, i + 1] AS xs FROM range(10) r(i)) TO '{out}/nested.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT i AS id, 'x' AS v FROM range(10) r(i)) TO '{out}/schema_a.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT i AS id, i AS v FROM range(10, 20) r(i)) TO '{out}/schema_b.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT i AS id, CASE WHEN i = 7 THEN 12345678901234567890.1234567891 ELSE i END::DECIMAL(38,10) AS amount FROM range(10) r(i)) TO '{out}/decimal_wide.parquet' (FORMAT parquet)")

    # Nested columns with nulls at every level: the struct, a struct inside it, the leaves, the
    # list, its items, the map and its values. The Arrow IPC copy comes from the same rows.
    con.execute(f"""COPY (SELECT i AS id,
        CASE WHEN i % 5 = 0 THEN NULL ELSE {{
            'b': CASE WHEN i % 3 = 0 THEN NULL ELSE i * 10 END,
            'c': CASE WHEN i % 4 = 1 THEN NULL ELSE {{'d': CASE WHEN i % 4 = 0 THEN NULL ELSE 'x' || i END}} END
        }} END AS a,
        CASE WHEN i % 6 = 0 THEN NULL WHEN i % 6 = 1 THEN []::BIGINT[] ELSE [i, NULL, i + 1] END AS xs,
        CASE WHEN i % 7 = 0 THEN NULL ELSE MAP {{'k': i, 'n': NULL::BIGINT}} END AS m
        FROM range(20) r(i) ORDER BY i) TO '{out}/nested_nulls.parquet' (FORMAT parquet)""")
    nested_tbl = pq.read_table(f"{out}/nested_nulls.parquet")
    with ipc.new_file(f"{out}/nested_nulls.arrow", nested_tbl.schema) as w:
        w.write_table(nested_tbl, max_chunksize=7)

    # Small compressed files for the byte-flip sweeps: every byte of each is flipped in turn.
    small = pa.table({
        "id": pa.array(range(40), pa.int64()),
        "s": pa.array([None if i % 7 == 0 else f"v{i % 5}" for i in range(40)]),
        "f": pa.array([None if i % 5 == 0 else i / 4 for i in range(40)]),
    })
    for codec in ["lz4", "zstd"]:
        with ipc.new_file(f"{out}/flip_{codec}.arrow", small.schema,
                          options=ipc.IpcWriteOptions(compression=codec)) as w:
            for b in small.to_batches(max_chunksize=20):
                w.write_batch(b)
        with ipc.new_stream(f"{out}/flip_{codec}.arrows", small.schema,
                            options=ipc.IpcWriteOptions(compression=codec)) as w:
            for b in small.to_batches(max_chunksize=20):
                w.write_batch(b)
    for codec in ["zstd", "snappy"]:
        pq.write_table(small, f"{out}/flip_{codec}.parquet", compression=codec,
                       row_group_size=20, use_dictionary=True)

    with open(f"{out}/variants.txt", "w") as f:
        f.write("\n".join(variants) + "\n")


if __name__ == "__main__":
    main()
