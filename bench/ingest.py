"""Ingest throughput: full Chartwise ingest vs orjson parsing alone vs fhir.resources validation alone.

Run: ``.venv/bin/python bench/ingest.py [--synthea DIR] [--large DIR]``

Inputs (each measured the same three ways, in one run):
- the 40 shared Synthea bundles (``../shared/data/fhir/synthea-r4/bundles``);
- a large generated patient: clinosim (seeded) Bulk NDJSON, reduced to the one patient with the
  most resources (thousands), cached under ``~/.cache/chartwise-testdata``.

Stages, each in a fresh child process so that peak memory (max RSS) is the stage's own:
- ``orjson``: read every file and ``orjson.loads`` every resource (the floor);
- ``validate``: the same plus ``fhir.resources`` R4B ``model_validate`` of every resource;
- ``full``: ``chartwise.fhir.store.load`` (parse, validate, quarantine, references) plus the facts
  and the timeline of every patient.
Target: full ingest at most 1.5x the time of validation alone.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SYNTHEA = REPO.parent / "shared" / "data" / "fhir" / "synthea-r4" / "bundles"
CACHE = Path(os.environ.get("CHARTWISE_TESTDATA", Path.home() / ".cache" / "chartwise-testdata"))


# ----------------------------------------------------------------------------------- stages
def _files(path: Path) -> list[Path]:
    from chartwise.fhir.sources import list_input_files

    return list_input_files(path)


def _raw_resources(path: Path):
    import orjson

    for f in _files(path):
        if f.suffix == ".ndjson":
            with f.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield orjson.loads(line)
        else:
            data = orjson.loads(f.read_bytes())
            if data.get("resourceType") == "Bundle":
                for e in data.get("entry", []):
                    if "resource" in e:
                        yield e["resource"]
            else:
                yield data


def stage_orjson(path: Path) -> int:
    return sum(1 for _ in _raw_resources(path))


def stage_validate(path: Path) -> int:
    from fhir.resources.R4B import get_fhir_model_class

    n = 0
    for r in _raw_resources(path):
        try:
            get_fhir_model_class(r["resourceType"]).model_validate(r)
        except Exception:  # noqa: BLE001 - invalid resources still cost their validation
            pass
        n += 1
    return n


def stage_full(path: Path) -> int:
    from chartwise.fhir.dates import parse_fhir_datetime
    from chartwise.fhir.store import load
    from chartwise.fhir.timeline import build_timeline

    parse_fhir_datetime.cache_clear()  # no help from a previous pass
    records = load(path)
    for record in records.patients():
        build_timeline(record)
    _ = records.dangling
    return records.read


STAGES = {"orjson": stage_orjson, "validate": stage_validate, "full": stage_full}


def run_stage_in_child(stage: str, path: Path, repeats: int) -> dict:
    """Run one stage in a fresh interpreter (imports warmed by a first pass); best of ``repeats``."""
    code = (
        "import json,sys,time,resource; sys.path.insert(0, %r); import ingest as b; from pathlib import Path; "
        "p=Path(%r); f=b.STAGES[%r]; f(p); best=None\n"
        "for _ in range(%d):\n t=time.perf_counter(); n=f(p); dt=time.perf_counter()-t; best=dt if best is None or dt<best else best\n"
        "print(json.dumps({'n': n, 'seconds': best, 'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))"
    ) % (str(Path(__file__).parent), str(path), stage, repeats)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ large patient
def large_patient(seed: int = 7, population: int = 200) -> Path:
    """The clinosim patient with the most resources, as a Bulk NDJSON folder of its own (cached)."""
    out = CACHE / f"clinosim-largest-p{population}-s{seed}"
    if (out / "Patient.ndjson").exists():
        return out
    full = CACHE / f"clinosim-p{population}-s{seed}"
    if not (full / "fhir_r4" / "Patient.ndjson").exists():
        print(f"generating clinosim population {population} seed {seed} (one-off, cached in {full}) ...", file=sys.stderr)
        subprocess.run([str(Path(sys.executable).parent / "clinosim"), "simulate", "-o", str(full), "-p", str(population),
                        "-s", str(seed), "--start", "2024-01-01", "--end", "2025-12-31", "--format", "fhir-r4"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    src = full / "fhir_r4"
    counts: dict[str, int] = {}
    for f in src.glob("*.ndjson"):
        for line in f.open():
            r = json.loads(line)
            ref = (r.get("subject") or r.get("patient") or {}).get("reference")
            if ref:
                counts[ref] = counts.get(ref, 0) + 1
    patient_ref = max(counts, key=counts.get)
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.ndjson")):
        keep = []
        for line in f.open():
            r = json.loads(line)
            ref = (r.get("subject") or r.get("patient") or {}).get("reference")
            if ref == patient_ref or f"{r['resourceType']}/{r.get('id')}" == patient_ref or r["resourceType"] in (
                    "Practitioner", "PractitionerRole", "Organization", "Location", "Medication"):
                keep.append(line if line.endswith("\n") else line + "\n")
        if keep:
            (out / f.name).write_text("".join(keep))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synthea", type=Path, default=DEFAULT_SYNTHEA)
    parser.add_argument("--large", type=Path, default=None, help="NDJSON folder of a large patient (default: generate)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    inputs = [("synthea (40 patients)", args.synthea), ("large generated patient", args.large or large_patient())]
    print(f"# bench/ingest.py  {time.strftime('%Y-%m-%d')}  python {sys.version.split()[0]}  {os.cpu_count()} cpus")
    print("| input | resources | orjson.loads res/s | validation res/s | full ingest res/s | full / validation time | peak RSS full (MB) |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for label, path in inputs:
        r = {s: run_stage_in_child(s, path, args.repeats) for s in STAGES}
        n = r["full"]["n"]
        ratio = r["full"]["seconds"] / r["validate"]["seconds"]
        worst = max(worst, ratio)
        print(f"| {label} | {n} | {r['orjson']['n'] / r['orjson']['seconds']:,.0f} | {r['validate']['n'] / r['validate']['seconds']:,.0f} "
              f"| {n / r['full']['seconds']:,.0f} | {ratio:.2f}x | {r['full']['max_rss_mb']:.0f} "
              f"(validation {r['validate']['max_rss_mb']:.0f}, orjson {r['orjson']['max_rss_mb']:.0f}) |")
    print(f"\ntarget: full ingest <= 1.5x validation alone -> worst {worst:.2f}x: {'MET' if worst <= 1.5 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
