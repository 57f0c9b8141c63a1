"""Shared helpers for the retrieval tests: data paths, question sets, a scratch index."""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _data import large_charts, shared_data  # noqa: E402
from _questions import build_set, recall  # noqa: E402

SYNTHEA = shared_data() / "fhir" / "synthea-r4" / "bundles"
NOTES = shared_data() / "fhir" / "bulk-notes" / "ndjson"


@lru_cache(maxsize=None)
def records(path: str):
    from chartwise.fhir.store import load

    return load(path)


def synthea_set():
    """(records, questions) pairs over 12 Synthea patients and 6 notes patients."""
    syn = records(str(SYNTHEA))
    notes = records(str(NOTES))
    return [(syn, build_set(syn, seed=1, limit_patients=12, label="s")),
            (notes, build_set(notes, seed=2, limit_patients=6, per_kind=1, label="n"))]


def large_set():
    recs = records(str(large_charts()))
    return [(recs, build_set(recs, seed=3, per_kind=8, label="L"))]


def run_set(sets) -> tuple[float, list]:
    from chartwise.tools import build_evidence

    scores, misses = [], []
    for recs, qs in sets:
        for q in qs:
            pack = build_evidence(q.question, recs.patient(q.patient))
            r = recall(q, [i.citation for i in pack.items])
            scores.append(r)
            if r < 1:
                misses.append((q.kind, q.question))
    return sum(scores) / len(scores), misses
