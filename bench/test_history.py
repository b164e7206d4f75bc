"""Tests of the benchmark history (qbench/history.py) and of report.py's use of it.

    python3 -m unittest discover -s bench -p 'test_*.py'     (scripts/test.sh runs this)

Standard library only: report.py imports matplotlib only to draw, and these tests draw nothing.
"""

import copy
import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
from qbench import history  # noqa: E402
from qbench.common import DOCS, ROOT  # noqa: E402

RESULTS = DOCS / "results.json"


def results():
    return json.loads(RESULTS.read_text())


class Figures(unittest.TestCase):
    def test_the_committed_results_give_every_headline_figure_of_their_sections(self):
        doc = results()
        got = {}
        for section, body in doc["sections"].items():
            got.update(history.figures(section, body))
        etl2 = next(r for r in doc["sections"]["etl"]["results"]
                    if r["system"] == "quarry-etl" and r["threads"] == 2)
        self.assertEqual(got["etl_vs_polars"], etl2["ratios"]["throughput_vs_polars"])
        lookup = next(r for r in doc["sections"]["server"]["results"]
                      if r["workload"] == "lookup" and r["system"] == "quarry")
        self.assertEqual(got["lookup_p99_ms"], lookup["p99_ms"]["median"])
        self.assertEqual(got["lookup_cpu_vs_floor"], lookup["ratios"]["fixed_body"]["cpu_us_per_req"])
        self.assertEqual(set(got), {k for k, *_ in history.HEADLINES})

    def test_a_run_of_error_answers_or_a_failed_section_gives_no_figure(self):
        body = copy.deepcopy(results()["sections"]["server"])
        for r in body["results"]:
            if r["workload"] == "lookup" and r["system"] == "quarry":
                r["requests"], r["errors"] = 1000, 500
        figs = history.figures("server", body)
        self.assertNotIn("lookup_p99_ms", figs)
        self.assertIn("scan_cpu_vs_floor", figs)
        self.assertEqual(history.figures("etl", {"failed": "boom"}), {})
        self.assertEqual(history.figures("parquet_etl", {"results": []}), {})


class Record(unittest.TestCase):
    def test_each_section_run_is_appended_once(self):
        doc, hist = results(), {"runs": []}
        added = history.record(doc, hist, ["etl", "server"])
        self.assertEqual([e["section"] for e in added], ["etl", "server"])
        self.assertEqual(added[0]["run_at"], doc["sections"]["etl"]["run_at"])
        self.assertEqual(added[0]["commit"], doc["machine"]["quarry_commit"])
        self.assertEqual(added[0]["loadavg_at_start"], doc["machine"]["loadavg_at_start"])
        self.assertEqual(history.record(doc, hist, ["etl", "server", "analytics"])[0]["section"], "analytics")
        self.assertEqual(history.record(doc, hist, ["etl", "server", "analytics"]), [])
        self.assertEqual(len(hist["runs"]), 3)

    def test_a_new_run_of_a_section_is_added_beside_the_old_one(self):
        doc, hist = results(), {"runs": []}
        history.record(doc, hist, ["etl"])
        later = copy.deepcopy(doc)
        later["sections"]["etl"]["run_at"] = "2030-01-01T00:00:00+00:00"
        history.record(later, hist, ["etl"])
        self.assertEqual(len(hist["runs"]), 2)


class Table(unittest.TestCase):
    def entry(self, value, run_at, quick=False):
        return {"section": "server", "run_at": run_at, "quick": quick,
                "figures": {"lookup_p99_ms": value}}

    def test_the_range_latest_count_and_dates_of_each_figure(self):
        hist = {"runs": [self.entry(0.9, "2026-11-24T06:00:00+00:00"),
                         self.entry(1.3, "2026-11-27T06:00:00+00:00"),
                         self.entry(1.1, "2026-11-28T06:00:00+00:00"),
                         self.entry(9.9, "2026-11-29T06:00:00+00:00", quick=True)]}
        rows = history.table(hist)
        self.assertEqual(len(rows), 3)
        cells = [c.strip() for c in rows[2].split("|")[1:-1]]
        self.assertIn("p99", cells[0])
        self.assertEqual(cells[1:5], ["1.100 ms", "0.900 ms - 1.300 ms", "3",
                                      "2026-11-24, 2026-11-27, 2026-11-28"])
        quick = history.table(hist, quick=True)[2]
        self.assertIn("9.900 ms - 9.900 ms | 1 |", quick)

    def test_the_readme_block_is_replaced_and_its_markers_are_required(self):
        text = f"before\n{history.BEGIN}\nold\n{history.END}\nafter\n"
        self.assertEqual(history.replace_block(text, ["new"]),
                         f"before\n{history.BEGIN}\nnew\n{history.END}\nafter\n")
        with self.assertRaises(ValueError):
            history.replace_block("no markers", ["new"])

    def test_the_readme_shows_the_committed_history(self):
        hist = history.load(DOCS / "history.json")
        text = (ROOT / "README.md").read_text()
        self.assertEqual(history.replace_block(text, history.table(hist)), text,
                         "README.md's headline table is stale: run bench/report.py")


class Report(unittest.TestCase):
    def test_report_records_the_named_sections_and_rewrites_the_readme(self):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            shutil.copy(RESULTS, d / "results.json")
            readme = d / "README.md"
            readme.write_text(f"# x\n{history.BEGIN}\n{history.END}\n")
            argv = [str(d / "results.json"), "--record", "etl", "server", "--no-plots",
                    "--readme", str(readme)]
            report.main(argv)
            hist = json.loads((d / "history.json").read_text())
            self.assertEqual([e["section"] for e in hist["runs"]], ["etl", "server"])
            self.assertIn("| point lookup: p99", readme.read_text())
            self.assertNotIn("Q6-like", readme.read_text())
            self.assertIn("## Headline figures over every recorded run", (d / "results.md").read_text())
            report.main(argv)
            self.assertEqual(len(json.loads((d / "history.json").read_text())["runs"]), 2)

    def test_a_corrupt_history_stops_the_report_instead_of_being_replaced(self):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            shutil.copy(RESULTS, d / "results.json")
            (d / "history.json").write_text('{"not runs": 1}')
            with self.assertRaises(SystemExit):
                report.main([str(d / "results.json"), "--record", "etl", "--no-plots"])
            self.assertEqual((d / "history.json").read_text(), '{"not runs": 1}')


if __name__ == "__main__":
    unittest.main()
