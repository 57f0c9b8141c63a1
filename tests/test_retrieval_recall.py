"""Evidence recall on the development question sets (gold keys computed from the raw JSON)."""
from __future__ import annotations

import pytest

from _retrieval import large_set, run_set, synthea_set


@pytest.fixture(scope="module", autouse=True)
def scratch_index(tmp_path_factory):
    from chartwise.tools import IndexSettings, configure

    configure(IndexSettings(path=tmp_path_factory.mktemp("index")))
    yield
    configure(None)


def test_synthea_and_notes_recall():
    sets = synthea_set()
    n = sum(len(qs) for _, qs in sets)
    assert n >= 150
    kinds = {q.kind for _, qs in sets for q in qs}
    assert {"latest", "at_date", "count", "first", "ever", "vaccine", "allergies", "note"} <= kinds
    score, misses = run_set(sets)
    assert score >= 0.98, misses[:10]  # the target; measured 1.000


def test_large_chart_recall():
    sets = large_set()
    recs, qs = sets[0]
    assert len(qs) >= 150
    assert max(len(p.keys) for p in recs.patients()) >= 2000
    score, misses = run_set(sets)
    assert score >= 0.95, misses[:10]  # the target; measured 1.000
