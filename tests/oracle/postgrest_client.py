#!/usr/bin/env python3
"""The PostgREST client from PyPI (`postgrest`) against Quarry's PostgREST face, every answer
checked against DuckDB over the same CSV.

Usage: postgrest_client.py BASE_URL CSV_PATH TABLE
  BASE_URL  e.g. http://127.0.0.1:8080/rest (what a PostgREST client is given)
  CSV_PATH  the CSV the dataset TABLE was built from (examples/flights/flights.csv)

Prints one line per case and exits 1 listing the failed cases (2 when a package is missing:
scripts/test.sh installs them into its virtual environment). Run by tests/e2e/postgrest.rs.
"""
import csv
import io
import math
import sys

try:
    import duckdb
    import postgrest
    from postgrest import SyncPostgrestClient
    from postgrest.exceptions import APIError
except ImportError as e:  # a failure, never a skip
    print(f"missing Python package: {e}; scripts/test.sh installs duckdb and postgrest", file=sys.stderr)
    sys.exit(2)

BASE, CSV_PATH, TABLE = sys.argv[1], sys.argv[2], sys.argv[3]
db = duckdb.connect()
db.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{CSV_PATH}', header=true, auto_detect=true)")
client = SyncPostgrestClient(BASE)
failures = []


def sql(q, *params):
    cur = db.execute(q, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def norm(v):
    if isinstance(v, float):
        return round(v, 9)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def same_rows(got, want):
    if len(got) != len(want):
        return f"{len(got)} rows, DuckDB {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if list(g.keys()) != list(w.keys()):
            return f"row {i}: keys {list(g.keys())} != DuckDB {list(w.keys())}"
        for k in w:
            a, b = g[k], w[k]
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                    return f"row {i} {k}: {a!r} != DuckDB {b!r}"
            elif norm(a) != norm(b):
                return f"row {i} {k}: {a!r} != DuckDB {b!r}"
    return None


def case(name, fn):
    try:
        problem = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported with its case
        problem = f"{type(e).__name__}: {e!r}"
    print(("FAIL " if problem else "ok   ") + name + (f": {problem}" if problem else ""))
    if problem:
        failures.append(name)


def t():
    return client.from_(TABLE)


def rows_case(name, build, query, *params):
    case(name, lambda: same_rows(build().execute().data, sql(query, *params)))


def error_case(name, build, code, status_text=None, needle=None):
    def run():
        try:
            build().execute()
        except APIError as e:
            if e.code != code:
                return f"code {e.code!r} != {code!r} ({e.message})"
            if not e.message:
                return "no message"
            if needle and needle not in (e.message + str(e.details) + str(e.hint)):
                return f"{needle!r} not in {e.message!r} / {e.details!r} / {e.hint!r}"
            return None
        return "no error"

    case(name, run)


S = "flight_id,origin,dep_delay"
# --- filters ------------------------------------------------------------------------------
rows_case("eq+gt+order desc+order asc+limit",
          lambda: t().select(S).eq("origin", "JFK").gt("dep_delay", 300)
          .order("dep_delay", desc=True).order("flight_id").limit(7),
          f"SELECT {S} FROM t WHERE origin='JFK' AND dep_delay>300 "
          "ORDER BY dep_delay DESC, flight_id LIMIT 7")
rows_case("neq+gte+lt+lte",
          lambda: t().select(S).neq("origin", "EWR").gte("dep_delay", 100).lt("dep_delay", 120)
          .lte("flight_id", "20130105").order("flight_id"),
          f"SELECT {S} FROM t WHERE origin<>'EWR' AND dep_delay>=100 AND dep_delay<120 "
          "AND flight_id<='20130105' ORDER BY flight_id")
rows_case("in_ with quoted values",
          lambda: t().select("flight_id,dest_name").in_("dest_name", ["Chicago Ohare Intl", "Los Angeles Intl"])
          .eq("date", "2013-01-03").order("flight_id"),
          "SELECT flight_id,dest_name FROM t WHERE dest_name IN ('Chicago Ohare Intl','Los Angeles Intl') "
          "AND date='2013-01-03' ORDER BY flight_id")
rows_case("is_ null",
          lambda: t().select(S).is_("dep_delay", "null").eq("origin", "LGA").order("flight_id").limit(50),
          f"SELECT {S} FROM t WHERE dep_delay IS NULL AND origin='LGA' ORDER BY flight_id LIMIT 50")
rows_case("not_ is_ null, is_ true",
          lambda: t().select("flight_id,cancelled").not_.is_("dep_delay", "null").is_("cancelled", True)
          .order("flight_id"),
          "SELECT flight_id,cancelled FROM t WHERE dep_delay IS NOT NULL AND cancelled ORDER BY flight_id")
rows_case("like",
          lambda: t().select("flight_id,dest_name").like("dest_name", "*Intl*").eq("date", "2013-01-02")
          .order("flight_id").limit(40),
          "SELECT flight_id,dest_name FROM t WHERE dest_name LIKE '%Intl%' AND date='2013-01-02' "
          "ORDER BY flight_id LIMIT 40")
rows_case("ilike",
          lambda: t().select("flight_id,airline").ilike("airline", "%JETBLUE%").eq("date", "2013-01-02")
          .order("flight_id"),
          "SELECT flight_id,airline FROM t WHERE airline ILIKE '%jetblue%' AND date='2013-01-02' "
          "ORDER BY flight_id")
rows_case("not_ like / not_ eq / not_ in_",
          lambda: t().select("flight_id,carrier,origin").eq("date", "2013-01-06").not_.like("carrier", "U*")
          .not_.eq("origin", "JFK").not_.in_("carrier", ["B6", "EV"]).order("flight_id"),
          "SELECT flight_id,carrier,origin FROM t WHERE date='2013-01-06' AND carrier NOT LIKE 'U%' "
          "AND origin<>'JFK' AND carrier NOT IN ('B6','EV') ORDER BY flight_id")
rows_case("or_ nested with and()",
          lambda: t().select(S).eq("date", "2013-01-04")
          .or_("dep_delay.gt.200,and(origin.eq.LGA,dep_delay.lt.-15)").order("flight_id"),
          f"SELECT {S} FROM t WHERE date='2013-01-04' AND (dep_delay>200 OR (origin='LGA' AND dep_delay<-15)) "
          "ORDER BY flight_id")
rows_case("not_ or_ (three-valued: nulls excluded)",
          lambda: t().select(S).eq("date", "2013-01-04").not_.or_("dep_delay.gt.-5,origin.eq.JFK")
          .order("flight_id"),
          f"SELECT {S} FROM t WHERE date='2013-01-04' AND NOT (dep_delay>-5 OR origin='JFK') ORDER BY flight_id")
rows_case("isdistinct / not.isdistinct",
          lambda: t().select(S).eq("date", "2013-01-09").filter("dep_delay", "isdistinct", "0")
          .filter("origin", "not.isdistinct", "EWR").order("flight_id"),
          f"SELECT {S} FROM t WHERE date='2013-01-09' AND dep_delay IS DISTINCT FROM 0 "
          "AND origin IS NOT DISTINCT FROM 'EWR' ORDER BY flight_id")
rows_case("match / imatch / not.match (regular expressions)",
          lambda: t().select("flight_id,dest_name,tailnum").eq("date", "2013-01-05").filter("dest_name", "match", "^San ")
          .filter("tailnum", "imatch", "n[0-9]+ua$").filter("dest_name", "not.match", "Jose").order("flight_id"),
          "SELECT flight_id,dest_name,tailnum FROM t WHERE date='2013-01-05' AND regexp_matches(dest_name, '^San ') "
          "AND regexp_matches(tailnum, 'n[0-9]+ua$', 'i') AND NOT regexp_matches(dest_name, 'Jose') ORDER BY flight_id")

# --- ordering (PostgreSQL's null placement) --------------------------------------------------
rows_case("order desc puts nulls first (PostgreSQL default)",
          lambda: t().select(S).eq("origin", "JFK").order("dep_delay", desc=True).order("flight_id").limit(25),
          f"SELECT {S} FROM t WHERE origin='JFK' ORDER BY dep_delay DESC NULLS FIRST, flight_id LIMIT 25")
rows_case("order asc puts nulls last",
          lambda: t().select(S).eq("origin", "JFK").order("dep_delay").order("flight_id", desc=True)
          .range(3000, 3024),
          f"SELECT {S} FROM t WHERE origin='JFK' ORDER BY dep_delay ASC NULLS LAST, flight_id DESC "
          "LIMIT 25 OFFSET 3000")
rows_case("nullsfirst / nullslast explicit",
          lambda: t().select("flight_id,temp_f,dep_delay").eq("date", "2013-01-10")
          .order("dep_delay", desc=True, nullsfirst=False).order("temp_f", nullsfirst=True)
          .order("flight_id").limit(30),
          "SELECT flight_id,temp_f,dep_delay FROM t WHERE date='2013-01-10' "
          "ORDER BY dep_delay DESC NULLS LAST, temp_f ASC NULLS FIRST, flight_id LIMIT 30")

# --- select, aliases ----------------------------------------------------------------------
rows_case("aliases",
          lambda: t().select("id:flight_id,from:origin,delay:dep_delay").eq("dest", "SFO").order("flight_id").limit(9),
          "SELECT flight_id AS id, origin AS \"from\", dep_delay AS delay FROM t WHERE dest='SFO' "
          "ORDER BY flight_id LIMIT 9")

# --- range, offset, count -----------------------------------------------------------------
rows_case("range(10, 19)",
          lambda: t().select(S).order("flight_id").range(10, 19),
          f"SELECT {S} FROM t ORDER BY flight_id LIMIT 10 OFFSET 10")
rows_case("offset + limit",
          lambda: t().select(S).eq("origin", "EWR").order("dep_delay", desc=True).order("flight_id")
          .limit(5).offset(100),
          f"SELECT {S} FROM t WHERE origin='EWR' ORDER BY dep_delay DESC NULLS FIRST, flight_id LIMIT 5 OFFSET 100")


def count_case():
    r = t().select(S, count="exact").eq("origin", "LGA").gt("dep_delay", 60).order("flight_id").limit(3).execute()
    want = sql("SELECT count(*) AS n FROM t WHERE origin='LGA' AND dep_delay>60")[0]["n"]
    if r.count != want:
        return f"count {r.count} != DuckDB {want}"
    return same_rows(r.data, sql(f"SELECT {S} FROM t WHERE origin='LGA' AND dep_delay>60 ORDER BY flight_id LIMIT 3"))


case("count=exact", count_case)
for method in ("planned", "estimated"):
    case(f"count={method} (counted exactly)", lambda m=method: (
        None if t().select("flight_id", count=m).eq("carrier", "AA").limit(1).execute().count
        == sql("SELECT count(*) AS n FROM t WHERE carrier='AA'")[0]["n"] else "count differs"))
error_case("offset beyond the bound points to cursors",
           lambda: t().select(S).offset(10_000_000).limit(1), "PGRST103", needle="cursor")

# --- single, maybe_single -----------------------------------------------------------------
key = sql("SELECT flight_id FROM t ORDER BY flight_id LIMIT 1 OFFSET 777")[0]["flight_id"]
case("single() on one row is an object",
     lambda: same_rows([t().select(S).eq("flight_id", key).single().execute().data],
                       sql(f"SELECT {S} FROM t WHERE flight_id=?", key)))
error_case("single() on many rows: 406 PGRST116",
           lambda: t().select(S).eq("origin", "JFK").single(), "PGRST116", needle="rows")
error_case("single() on no rows: 406 PGRST116",
           lambda: t().select(S).eq("flight_id", "nope").single(), "PGRST116", needle="0 rows")
case("maybe_single() on no rows is None",
     lambda: None if t().select(S).eq("flight_id", "nope").maybe_single().execute() is None else "not None")
case("maybe_single() on one row",
     lambda: same_rows([t().select(S).eq("flight_id", key).maybe_single().execute().data],
                       sql(f"SELECT {S} FROM t WHERE flight_id=?", key)))

# --- csv ----------------------------------------------------------------------------------


def csv_case():
    text = t().select("flight_id,carrier,dep_delay").eq("date", "2013-01-07").eq("origin", "EWR") \
        .order("flight_id").csv().execute().data
    got = list(csv.DictReader(io.StringIO(text)))
    want = sql("SELECT flight_id,carrier,dep_delay FROM t WHERE date='2013-01-07' AND origin='EWR' ORDER BY flight_id")
    want = [{k: ("" if v is None else str(v)) for k, v in w.items()} for w in want]
    return same_rows(got, want)


case("csv()", csv_case)

# --- aggregates (PostgREST key names) -------------------------------------------------------
rows_case("aggregates keyed avg/count/max, grouped",
          lambda: t().select("origin,dep_delay.avg(),count(),arr_delay.max()").order("origin"),
          "SELECT origin, avg(dep_delay) AS avg, count(*) AS count, max(arr_delay) AS max FROM t "
          "GROUP BY origin ORDER BY origin")
rows_case("aggregate aliases and order by alias",
          lambda: t().select("carrier,mean_delay:dep_delay.avg(),flights:count()").gt("distance", 1000)
          .order("flights", desc=True).order("carrier").limit(5),
          "SELECT carrier, avg(dep_delay) AS mean_delay, count(*) AS flights FROM t WHERE distance>1000 "
          "GROUP BY carrier ORDER BY flights DESC, carrier LIMIT 5")
rows_case("aggregates without groups",
          lambda: t().select("distance.sum(),temp_f.min()").eq("origin", "JFK"),
          "SELECT sum(distance) AS sum, min(temp_f) AS min FROM t WHERE origin='JFK'")

# --- errors in PostgREST's shape ------------------------------------------------------------
error_case("unknown column in a filter: 42703", lambda: t().select("*").eq("nosuch", 1), "42703", needle="nosuch")
error_case("unknown column in select: 42703", lambda: t().select("nosuch"), "42703", needle="nosuch")
error_case("unknown column in order: 42703", lambda: t().select("*").order("nosuch"), "42703", needle="nosuch")
error_case("malformed filter: PGRST100", lambda: t().select("*").filter("dep_delay", "gt", "soon"), "PGRST100",
           needle="soon")
error_case("unknown table: PGRST205", lambda: client.from_("nosuch").select("*"), "PGRST205", needle="nosuch")
error_case("embedding: PGRST200", lambda: t().select("*,airlines(*)"), "PGRST200")
error_case("full-text search is refused clearly", lambda: t().select("*").fts("dest_name", "intl"),
           "PGRST100", needle="not supported")
error_case("invalid regular expression", lambda: t().select("*").filter("dest_name", "match", "(("),
           "PGRST100", needle="regular expression")
error_case("insert: 405 read-only (25006)", lambda: t().insert({"flight_id": "x"}), "25006")
error_case("update: 405 read-only (25006)", lambda: t().update({"origin": "x"}).eq("flight_id", key), "25006")
error_case("delete: 405 read-only (25006)", lambda: t().delete().eq("flight_id", key), "25006")
error_case("rpc: PGRST202", lambda: client.rpc("anything", {}), "PGRST202")

print(f"postgrest {postgrest.__version__ if hasattr(postgrest, '__version__') else '?'}, duckdb {duckdb.__version__}: "
      f"{len(failures)} failed")
if failures:
    print("FAILED: " + "; ".join(failures))
    sys.exit(1)
