"""Golden checks on Synthea patients, the expected values computed here from the raw JSON."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from chartwise.fhir.store import load
from chartwise.fhir.timeline import build_timeline

PATIENTS = ["Hobert_Murazik", "Norma_Pagan", "Elvina_Lemke", "Micah_Schinner", "Sherron_Kutch"]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _bundle(synthea_dir, prefix):
    path = next(synthea_dir.glob(f"{prefix}_*.json"))
    return path, [e["resource"] for e in json.loads(path.read_text())["entry"]]


@pytest.mark.parametrize("prefix", PATIENTS)
def test_golden_values(synthea_dir, prefix):
    path, resources = _bundle(synthea_dir, prefix)
    timeline = build_timeline(load(path).patient())

    # A condition's onset: the earliest onset of each condition code.
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    cond = conditions[0]
    code = cond["code"]["coding"][0]["code"]
    onsets = sorted(r["onsetDateTime"] for r in conditions if r["code"]["coding"][0]["code"] == code)
    problem = next(p for p in timeline.problems if p.code == code)
    assert problem.onset == onsets[0][:10]
    assert set(problem.citations) == {f"Condition/{r['id']}" for r in conditions if r["code"]["coding"][0]["code"] == code}

    # The latest value of a lab series (the lab code with the most results).
    labs = [r for r in resources if r["resourceType"] == "Observation" and "valueQuantity" in r
            and any(c["coding"][0]["code"] == "laboratory" for c in r.get("category", []))]
    if labs:
        from collections import Counter

        lab_code = Counter(r["code"]["coding"][0]["code"] for r in labs).most_common(1)[0][0]
        series = [r for r in labs if r["code"]["coding"][0]["code"] == lab_code]
        latest = max(series, key=lambda r: (_utc(r["effectiveDateTime"]), r["id"]))
        got = next(s for s in timeline.labs if s.code == lab_code)
        assert got.count == len(series)
        assert got.latest.key == f"Observation/{latest['id']}"
        assert got.latest.value == pytest.approx(latest["valueQuantity"]["value"])
        assert got.latest.date == latest["effectiveDateTime"][:10]

    # A medication course: first and last order of the most-ordered medication.
    meds = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    from collections import Counter

    med_code = Counter(r["medicationCodeableConcept"]["coding"][0]["code"] for r in meds).most_common(1)[0][0]
    orders = sorted((r for r in meds if r["medicationCodeableConcept"]["coding"][0]["code"] == med_code),
                    key=lambda r: _utc(r["authoredOn"]))
    course = next(m for m in timeline.medications if m.code == med_code)
    assert course.start == orders[0]["authoredOn"][:10]
    assert course.last_order == orders[-1]["authoredOn"][:10]
    assert course.orders == len(orders)
    assert course.status == orders[-1]["status"]
    if orders[-1]["status"] == "stopped":
        assert course.stop == orders[-1]["authoredOn"][:10]


def test_every_timeline_citation_resolves_for_all_synthea(synthea_records):
    for record in synthea_records.patients():
        timeline = build_timeline(record)
        keys = timeline.citations()
        assert keys
        for key in keys:
            assert record.get(key) is not None, key
