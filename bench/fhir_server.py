"""Benchmark: one patient's record through the REST source vs the same bundle read from a file.

Starts sekmet-fhir on 127.0.0.1 (fresh data folder), loads N Synthea bundles as PUT transactions,
then for each patient times ``store.load`` of (a) the bundle file, (b) the server with
``$everything``, (c) the server with per-type searches at ``_count`` 50 and 500, and reports the
median time and the requests per patient.

    .venv/bin/python bench/fhir_server.py [--patients 5] [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _fhir_server import SekmetServer, synthea_files  # noqa: E402

from chartwise.fhir.rest import RestSettings, RestSource  # noqa: E402
from chartwise.fhir.store import load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args(argv)

    files = synthea_files(40)
    step = max(1, len(files) // args.patients)
    files = files[::step][: args.patients]  # small to large
    rows = []
    with tempfile.TemporaryDirectory() as tmp, SekmetServer(Path(tmp)) as server:
        started = time.perf_counter()
        server.load_files(files)
        load_s = time.perf_counter() - started
        print(f"server {server.base_url}: loaded {len(files)} bundles in {load_s:.1f}s", file=sys.stderr)
        modes = [("file", None, None), ("$everything", True, 50), ("search _count=50", False, 50),
                 ("search _count=500", False, 500)]
        for file in files:
            bundle = json.loads(file.read_text())
            pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
            for name, everything, count in modes:
                times, requests, resources = [], 0, 0
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    if everything is None:
                        records = load(str(file))
                    else:
                        src = RestSource(RestSettings(base_url=server.base_url, patients=[pid],
                                                      use_everything=everything, page_size=count))
                        records = load(src)
                        requests = src.stats.requests
                    times.append(time.perf_counter() - t0)
                    resources = records.accepted
                rows.append({"patient": pid, "bytes": file.stat().st_size, "resources": resources, "mode": name,
                             "median_s": statistics.median(times), "requests": requests})
    print(f"\n| mode | patients | resources/patient (median) | time/patient median (s) | requests/patient (median) |")
    print("|---|---:|---:|---:|---:|")
    for name, *_ in modes:
        sel = [r for r in rows if r["mode"] == name]
        print(f"| {name} | {len(sel)} | {statistics.median(r['resources'] for r in sel):.0f} | "
              f"{statistics.median(r['median_s'] for r in sel):.3f} | "
              f"{statistics.median(r['requests'] for r in sel):.0f} |")
    print("\n| patient resources | file (s) | $everything (s, req) | _count=50 (s, req) | _count=500 (s, req) |")
    print("|---:|---:|---:|---:|---:|")
    for file_row in [r for r in rows if r["mode"] == "file"]:
        cells = [f"{file_row['resources']}", f"{file_row['median_s']:.3f}"]
        for name, *_ in modes[1:]:
            r = next(x for x in rows if x["mode"] == name and x["patient"] == file_row["patient"])
            cells.append(f"{r['median_s']:.3f}, {r['requests']}")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
