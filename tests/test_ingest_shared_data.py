"""Every file of the shared FHIR data parses; what is invalid is quarantined; counts reconcile."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chartwise.fhir.facts import Category
from chartwise.fhir.store import load
from chartwise.fhir.timeline import build_timeline


def _count_raw(path: Path) -> int:
    """Resources in the input, counted independently of the loader."""
    total = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson") and p.name != "log.ndjson")
    for f in files:
        if f.suffix == ".ndjson":
            total += sum(1 for line in f.read_text().splitlines() if line.strip())
            continue
        data = json.loads(f.read_text())

        def count(d: dict) -> int:
            if d.get("resourceType") != "Bundle":
                return 1
            return sum(count(e["resource"]) for e in d.get("entry", []) if "resource" in e)

        total += count(data)
    return total


@pytest.mark.parametrize("folder,patients", [
    ("synthea-r4/bundles", 40),
    ("bulk-notes/ndjson", 13),
    ("uscore", 2),
    ("hl7-r4-examples/clinical-subset", None),
])
def test_shared_folder_parses_and_counts_reconcile(shared_data, folder, patients):
    path = shared_data / "fhir" / folder
    records = load(path)
    m = records.manifest()
    assert m.read == _count_raw(path)
    assert m.read == m.accepted + m.quarantined
    assert m.accepted == len(records.refs.by_key) + records.duplicates
    if patients is not None:
        assert len(m.patients) == patients
    for q in m.quarantine:
        assert q.reason and q.origin, q
        assert str(path) in q.origin
    # Facts and timelines build for every patient without error, and cite only input resources.
    for record in records.patients():
        timeline = build_timeline(record)
        for key in timeline.citations():
            assert key in records.refs.by_key, key


def test_hl7_examples_each_file_alone(shared_data):
    """Each of the 272 official examples read on its own: accepted or quarantined, never a crash."""
    files = sorted((shared_data / "fhir" / "hl7-r4-examples" / "clinical-subset").glob("*.json"))
    assert len(files) == 272
    for f in files:
        records = load(f)
        assert records.read == records.accepted + len(records.quarantined) >= 1


def test_uscore_invalid_observation_is_quarantined_with_field(shared_data):
    records = load(shared_data / "fhir" / "uscore")
    assert records.quarantined, "the US Core set holds one invalid Observation (effectivePeriod.stop)"
    q = records.quarantined[0]
    assert q.resource_type == "Observation" and q.id
    assert q.field.startswith("effectivePeriod")
    assert "entry" in q.origin


def test_bulk_notes_are_decoded(shared_data):
    records = load(shared_data / "fhir" / "bulk-notes" / "ndjson")
    notes = [f for r in records.patients() for f in r.facts if f.category == Category.note]
    assert len(notes) == 1215
    assert all(f.text and len(f.text) >= 300 for f in notes)
    raw = next(json.loads(line) for line in (shared_data / "fhir/bulk-notes/ndjson/DocumentReference.000.ndjson").open())
    import base64

    fact = next(f for f in notes if f.key == f"DocumentReference/{raw['id']}")
    assert fact.text == base64.b64decode(raw["content"][0]["attachment"]["data"]).decode("utf-8")
