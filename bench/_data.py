"""Large generated charts for tests and benchmarks (clinosim, seeded; cached, never committed).

``large_charts()`` runs ``clinosim simulate`` once per parameter set, keeps the ``top`` patients with
the most resources (plus the practitioners, organizations, locations and medications they point
to), and writes them as Bulk NDJSON under ``~/.cache/chartwise-testdata/<params>/`` (override the
root with ``CHARTWISE_TESTDATA``).  Later calls return the cached folder at once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import orjson

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
_KEEP_UNLINKED = {"Medication", "Practitioner", "PractitionerRole", "Organization", "Location"}


def cache_root() -> Path:
    return Path(os.environ.get("CHARTWISE_TESTDATA", Path.home() / ".cache" / "chartwise-testdata"))


def shared_data() -> Path:
    """The shared development data folder (``../shared/data`` or ``$CHARTWISE_SHARED_DATA``)."""
    return Path(os.environ.get("CHARTWISE_SHARED_DATA", SHARED))


def _owner(res: dict) -> str | None:
    for name in ("subject", "patient", "beneficiary", "individual"):
        ref = res.get(name)
        if isinstance(ref, list):
            ref = ref[0] if ref else None
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return ref["reference"]
    if res.get("resourceType") == "Patient":
        return f"Patient/{res.get('id')}"
    return None


def _simulate(raw: Path, population: int, seed: int, start: str, end: str) -> Path:
    exe = Path(sys.executable).with_name("clinosim")
    cmd = [str(exe) if exe.exists() else "clinosim", "simulate", "-o", str(raw), "-p", str(population), "-s", str(seed),
           "--start", start, "--end", end, "--format", "fhir-r4"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return raw / "fhir_r4"


def large_charts(population: int = 300, seed: int = 11, start: str = "2024-01-01", end: str = "2025-12-31",
                 top: int = 4, raw_dir: Path | None = None) -> Path:
    """A folder of Bulk NDJSON with the ``top`` largest patients of one seeded clinosim run."""
    name = f"clinosim-p{population}-s{seed}-{start}-{end}-top{top}"
    out = cache_root() / name
    if (out / ".complete").exists():
        return out
    with tempfile.TemporaryDirectory(prefix="chartwise-clinosim-") as tmp:
        fhir_dir = raw_dir if raw_dir is not None else _simulate(Path(tmp) / "raw", population, seed, start, end)
        counts: Counter[str] = Counter()
        files = sorted(fhir_dir.glob("*.ndjson"))
        for fn in files:
            with open(fn, "rb") as fh:
                for line in fh:
                    owner = _owner(orjson.loads(line)) if line.strip() else None
                    if owner:
                        counts[owner] += 1
        chosen = {k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]}
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for fn in files:
            kept = []
            with open(fn, "rb") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    res = orjson.loads(line)
                    owner = _owner(res)
                    if owner in chosen or (owner is None and res.get("resourceType") in _KEEP_UNLINKED):
                        kept.append(line if line.endswith(b"\n") else line + b"\n")
            if kept:
                (staging / fn.name).write_bytes(b"".join(kept))
        (staging / ".complete").write_text(f"{population} {seed} {start} {end} {top}\n")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    return out


def merged_chart(source: Path | None = None) -> Path:
    """One patient with every resource of the 8 largest clinosim charts (over 10,000): the latency target's chart.

    The other patients' resources are re-pointed at the first patient and their Patient resources dropped,
    so one record holds several admissions' worth of labs, notes and medications.
    """
    source = source or large_charts(top=8)
    out = source.with_name(source.name + "-merged")
    if (out / ".complete").exists():
        return out
    patients = [orjson.loads(line) for line in (source / "Patient.ndjson").read_bytes().splitlines() if line.strip()]
    keep = f"Patient/{patients[0]['id']}".encode()
    others = [f"Patient/{p['id']}".encode() for p in patients[1:]]
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for fn in sorted(source.glob("*.ndjson")):
        lines = []
        for line in fn.read_bytes().splitlines():
            if not line.strip():
                continue
            for other in others:
                line = line.replace(b'"' + other + b'"', b'"' + keep + b'"')
            lines.append(line)
        if fn.name == "Patient.ndjson":
            lines = [ln for ln in lines if orjson.loads(ln)["id"] == patients[0]["id"]]
        (staging / fn.name).write_bytes(b"\n".join(lines) + b"\n")
    (staging / ".complete").write_text("merged\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


if __name__ == "__main__":  # python bench/_data.py [population seed top]
    args = sys.argv[1:]
    kw = {}
    if args:
        kw = {"population": int(args[0]), "seed": int(args[1]), "top": int(args[2])}
    print(large_charts(**kw))
