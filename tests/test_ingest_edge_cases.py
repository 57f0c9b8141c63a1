"""References, quarantine, strict mode, version detection, and one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chartwise.fhir.errors import InputError, ValidationFailure
from chartwise.fhir.facts import Category
from chartwise.fhir.store import load

REPO = Path(__file__).resolve().parents[1]
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-02-03"}


def _write(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _bundle(*resources, btype="collection", urn=False):
    entries = []
    for r in resources:
        entry = {"resource": r}
        if urn:
            entry["fullUrl"] = f"urn:uuid:{r['id']}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": btype, "entry": entries}


def test_reference_kinds_resolve(tmp_path):
    med = {"resourceType": "Medication", "id": "m1", "code": {"text": "Metformin 500 MG Oral Tablet"}}
    enc = {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"},
           "subject": {"reference": "urn:uuid:p1"}, "period": {"start": "2020-01-01T10:00:00Z"}}
    k = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "Potassium"},
         "subject": {"reference": "urn:uuid:p1"}, "encounter": {"reference": "Encounter/e1"},
         "effectiveDateTime": "2020-01-01", "valueQuantity": {"value": 4.1, "unit": "mmol/L"}}
    panel = {"resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "Panel"},
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2020-01-01", "hasMember": [{"reference": "Observation/o1"}]}
    report = {"resourceType": "DiagnosticReport", "id": "d1", "status": "final", "code": {"text": "BMP"},
              "subject": {"reference": "Patient/p1"}, "result": [{"reference": "urn:uuid:o1"}, {"reference": "Observation/missing"}]}
    rx_ref = {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
              "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "urn:uuid:m1"}, "authoredOn": "2020-02-01"}
    rx_contained = {"resourceType": "MedicationRequest", "id": "r2", "status": "active", "intent": "order",
                    "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "Lisinopril 10 MG"}}],
                    "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "#med"}, "authoredOn": "2020-03-01"}
    path = _write(tmp_path, "b.json", _bundle(PATIENT, med, enc, k, panel, report, rx_ref, rx_contained, btype="transaction", urn=True))
    records = load(path)
    record = records.patient()
    facts = record.facts_by_key
    assert facts["Observation/o1"].encounter == "Encounter/e1"
    assert facts["Observation/o2"].related == ["Observation/o1"]
    assert facts["DiagnosticReport/d1"].related == ["Observation/o1"]
    assert facts["MedicationRequest/r1"].label == "Metformin 500 MG Oral Tablet"
    assert facts["MedicationRequest/r2"].label == "Lisinopril 10 MG"
    dangling = records.dangling
    assert [(d.source, d.path, d.reference) for d in dangling] == [("DiagnosticReport/d1", "result[1]", "Observation/missing")]
    assert records.manifest().dangling_references == 1


def test_conditional_and_absolute_references(tmp_path):
    prac = {"resourceType": "Practitioner", "id": "dr", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "999"}]}
    cond = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "https://ehr.example/fhir/Patient/p1"},
            "recorder": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999"}, "code": {"text": "Asthma"},
            "onsetDateTime": "2001-05"}
    records = load(_write(tmp_path, "b.json", _bundle(PATIENT, prac, cond)))
    assert records.dangling == []
    fact = records.patient().facts_by_key["Condition/c1"]
    assert fact.day == "2001-05" and fact.label == "Asthma"


def test_lenient_quarantines_and_strict_stops(tmp_path):
    bad = {"resourceType": "Observation", "id": "bad", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": "abc"}}
    good = {"resourceType": "Observation", "id": "good", "status": "final", "code": {"text": "y"}, "subject": {"reference": "Patient/p1"}}
    path = _write(tmp_path, "b.json", _bundle(PATIENT, bad, good))
    records = load(path)
    assert (records.read, records.accepted, len(records.quarantined)) == (3, 2, 1)
    q = records.quarantined[0]
    assert (q.origin, q.key, q.field) == (f"{path} entry 1", "Observation/bad", "valueQuantity.value")
    with pytest.raises(ValidationFailure, match=r"entry 1: Observation/bad field valueQuantity.value"):
        load(path, strict=True)


def test_ndjson_quarantine_names_the_line(tmp_path):
    lines = [json.dumps(PATIENT), json.dumps({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
                                              "onsetDateTime": "not a date"})]
    path = _write(tmp_path, "Condition.ndjson", "\n".join(lines) + "\n")
    records = load(path)
    assert records.quarantined[0].origin == f"{path}:2"
    assert records.quarantined[0].field == "onsetDateTime"


def test_stu3_and_r5_are_rejected(tmp_path):
    stu3 = {"resourceType": "Condition", "id": "s", "clinicalStatus": "active", "verificationStatus": "confirmed",
            "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}
    with pytest.raises(InputError, match="STU3"):
        load(_write(tmp_path, "stu3.json", stu3))
    with pytest.raises(InputError, match="STU3"):
        load(_write(tmp_path, "pr.json", {"resourceType": "ProcedureRequest", "id": "x"}))
    with pytest.raises(InputError, match="R5"):
        load(_write(tmp_path, "r5.json", {"resourceType": "DeviceUsage", "id": "x"}))


def test_notes_html_and_plain(tmp_path):
    import base64

    html_note = "<html><body><p>Assessment: <b>stable</b> angina.</p><script>x()</script></body></html>"
    doc = {"resourceType": "DocumentReference", "id": "n1", "status": "current", "subject": {"reference": "Patient/p1"},
           "date": "2021-03-05T10:00:00Z", "type": {"text": "Progress note"},
           "content": [{"attachment": {"contentType": "text/html", "data": base64.b64encode(html_note.encode()).decode()}}]}
    dr = {"resourceType": "DiagnosticReport", "id": "r1", "status": "final", "code": {"text": "CT chest"},
          "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2021-03-06",
          "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": base64.b64encode("No nodules.".encode()).decode()}]}
    facts = load(_write(tmp_path, "b.json", _bundle(PATIENT, doc, dr))).patient().facts_by_key
    assert facts["DocumentReference/n1"].text == "Assessment: stable angina."
    assert facts["DiagnosticReport/r1"].text == "No nodules." and facts["DiagnosticReport/r1"].category == Category.note


BAD_INPUTS = {
    "truncated.json": '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Pat',
    "not_fhir.json": '{"name": "not a resource", "items": [1, 2]}',
    "stu3.json": json.dumps({"resourceType": "Condition", "id": "s", "clinicalStatus": "active",
                             "verificationStatus": "confirmed", "subject": {"reference": "Patient/p1"}}),
    "empty.json": "",
    "binary.json": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS) + ["wrong_type.json", "missing.json"])
def test_bad_input_gives_one_line_error(tmp_path, name):
    path = tmp_path / name
    content = BAD_INPUTS.get(name)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    elif name == "wrong_type.json":
        # A resource with a wrong type in a field: quarantined in lenient mode, an error in strict mode.
        path.write_text(json.dumps({"resourceType": "Patient", "id": "p", "birthDate": {"year": 1950}}))
    proc = subprocess.run([sys.executable, "-m", "chartwise.cli", "inspect", str(path)]
                          + (["--strict"] if name == "wrong_type.json" else []),
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("chartwise: ")
    if name != "missing.json":
        assert name in lines[0]
    if name == "wrong_type.json":
        assert "birthDate" in lines[0] and "Patient/p" in lines[0]


def test_debug_shows_traceback(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("")
    proc = subprocess.run([sys.executable, "-m", "chartwise.cli", "--debug", "inspect", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
