"""De-identification of structured data and notes, date shifting, re-identification of answers."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from _fhir_server import synthea_files

from chartwise.fhir.deid import DeidSettings, Deidentifier, phi_values
from chartwise.fhir.store import load
from chartwise.privacy import scan_for_phi

NOTES = Path("/work/shared/data/fhir/bulk-notes/ndjson")


@pytest.fixture(scope="module")
def notes_record(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notes")
    for name in ("Patient.000.ndjson", "DocumentReference.000.ndjson"):
        (folder / name).symlink_to(NOTES / name)
    records = load(str(folder))
    # the patient with the most notes
    best = max(records.patients(), key=lambda p: sum(1 for f in p.facts if f.category == "note"))
    return best


@pytest.fixture(scope="module")
def synthea_record():
    file = synthea_files(1)[0]
    return load(str(file)).patient()


def _names(patient):
    out = set()
    for name in patient["name"]:
        for part in [*name.get("given", []), name["family"]]:
            out.add(re.sub(r"\d+$", "", part))
    return out


def test_patient_resource_is_pseudonymised(synthea_record):
    deid = Deidentifier.for_record(synthea_record, DeidSettings(shift_dates=True, salt="s"))
    p = synthea_record.patient
    out = deid.resource(p)
    dumped = json.dumps(out)
    assert scan_for_phi(dumped, phi_values(p)) == []
    assert out["id"] == p["id"]  # citation keys are kept
    assert out["name"][0]["family"] != p["name"][0]["family"]
    assert out["birthDate"] != p["birthDate"] and len(out["birthDate"]) == 10
    assert "geolocation" not in dumped


def test_consistent_pseudonyms_and_deterministic_with_salt(synthea_record):
    a = Deidentifier.for_record(synthea_record, DeidSettings(salt="x"))
    b = Deidentifier.for_record(synthea_record, DeidSettings(salt="x"))
    c = Deidentifier.for_record(synthea_record, DeidSettings(salt="y"))
    family = synthea_record.patient["name"][0]["family"]
    assert a.text(f"Seen {family}.") == b.text(f"Seen {family}.")
    assert a.text(family) == a.resource(synthea_record.patient)["name"][0]["family"]
    assert a.text(family) != family
    assert a.text(family) != c.text(family) or a.offset_days == c.offset_days == 0


def test_free_text_exact_and_fuzzy(synthea_record):
    p = synthea_record.patient
    deid = Deidentifier.for_record(synthea_record, DeidSettings(salt="s"))
    given = re.sub(r"\d+$", "", p["name"][0]["given"][0])
    family = re.sub(r"\d+$", "", p["name"][0]["family"])
    phone = next(t["value"] for t in p["telecom"] if t["system"] == "phone")
    digits = re.sub(r"\D", "", phone)
    ssn = next(i["value"] for i in p["identifier"] if i.get("system", "").endswith("us-ssn"))
    y, m, d = p["birthDate"].split("-")
    typo = family[:-1] + ("a" if family[-1] != "a" else "e")
    text = (f"{given} {family} (DOB {m}/{d}/{y}) was seen today. Mr. {family.upper()}'s wife called "
            f"from ({digits[:3]}) {digits[3:6]}-{digits[6:]}; SSN {ssn}. {typo} lives at {p['address'][0]['line'][0]}, "
            f"{p['address'][0]['city']}. Also born {p['birthDate']}. He will return in May.")
    out = deid.text(text)
    leaks = scan_for_phi(out, [given, family, typo, phone, ssn, p["birthDate"], f"{m}/{d}/{y}",
                               p["address"][0]["line"][0], p["address"][0]["city"]])
    assert leaks == [], out
    assert "will return in May" in out  # lowercase words and months are not names


def test_notes_have_no_identifiers_left(notes_record):
    deid = Deidentifier.for_record(notes_record, DeidSettings(salt="s"))
    values = phi_values(notes_record.patient)
    notes = [f for f in notes_record.facts if f.category == "note" and f.text]
    assert notes
    mentioned = 0
    for fact in notes:
        if scan_for_phi(fact.text, values):
            mentioned += 1
        clean = deid.fact(fact)
        assert scan_for_phi(clean.text, values) == [], fact.key
        assert clean.key == fact.key
    assert mentioned > 0  # the test data really names the patient in notes


def test_document_attachment_is_rewritten(notes_record):
    deid = Deidentifier.for_record(notes_record, DeidSettings(salt="s"))
    key = next(f.key for f in notes_record.facts if f.category == "note" and f.text)
    doc = notes_record.get(key)
    out = deid.resource(doc)
    text = base64.b64decode(out["content"][0]["attachment"]["data"]).decode()
    assert scan_for_phi(text, phi_values(notes_record.patient)) == []


def test_date_shift_keeps_intervals_and_reidentifies(synthea_record):
    deid = Deidentifier.for_record(synthea_record, DeidSettings(shift_dates=True, salt="s", max_shift_days=100))
    assert deid.offset_days and abs(deid.offset_days) <= 100
    facts = [f for f in synthea_record.facts if f.when is not None][:20]
    shifted = [deid.fact(f) for f in facts]
    deltas = {(s.when - f.when).days for f, s in zip(facts, shifted)}
    assert deltas == {deid.offset_days}
    assert all(len(s.effective) == len(f.effective) for f, s in zip(facts, shifted))
    family = synthea_record.patient["name"][0]["family"]
    key = facts[0].key
    prompt = f"{family}: HbA1c 7.9% on {facts[0].day} [{key}] and 03/02/2019"
    safe = deid.text(prompt)
    assert family not in safe and facts[0].day not in safe and f"[{key}]" in safe
    # the model answers over the pseudonymised prompt; the user sees real values again
    assert deid.reidentify(safe) == prompt


def test_reidentify_answer_names(synthea_record):
    deid = Deidentifier.for_record(synthea_record, DeidSettings(salt="s"))
    p = synthea_record.patient
    given = p["name"][0]["given"][0]
    family = p["name"][0]["family"]
    safe = deid.text(f"Patient {given} {family} has diabetes [Condition/abc].")
    pseudo_family = deid.text(family)
    answer = f"{pseudo_family} has diabetes [Condition/abc]."
    assert deid.reidentify(answer) == f"{family} has diabetes [Condition/abc]."
    assert deid.reidentify(safe) == f"Patient {given} {family} has diabetes [Condition/abc]."


def test_citation_keys_are_never_touched():
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "abc-123"}],
               "name": [{"family": "Smith", "given": ["Anna"]}], "birthDate": "1970-02-03"}
    deid = Deidentifier(patient, settings=DeidSettings(shift_dates=True, salt="k"))
    text = "Anna Smith [DocumentReference/abc-123#10-40] on 2020-01-01 [Observation/2020-01-01]"
    out = deid.text(text)
    assert "[DocumentReference/abc-123#10-40]" in out and "[Observation/2020-01-01]" in out
    assert "Smith" not in out and "on 2020-01-01" not in out


def test_related_persons_and_contacts():
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Okafor", "given": ["Ngozi"]}],
               "contact": [{"name": {"family": "Adeyemi", "given": ["Tunde"]}, "telecom": [{"system": "phone", "value": "617-555-0199"}]}]}
    related = [{"resourceType": "RelatedPerson", "id": "r1", "name": [{"family": "Okafor", "given": ["Chidi"]}],
                "telecom": [{"system": "email", "value": "chidi@example.org"}]}]
    deid = Deidentifier(patient, related, DeidSettings(salt="k"))
    out = deid.text("Ngozi's brother Chidi Okafor (chidi@example.org) and Tunde Adeyemi, 617.555.0199, visited.")
    assert scan_for_phi(out, ["Ngozi", "Chidi", "Okafor", "Tunde", "Adeyemi", "chidi@example.org", "617-555-0199"]) == []
    assert deid.resource(related[0])["name"][0]["given"][0] != "Chidi"


def test_policy_remote_on_local_opt_in():
    auto = DeidSettings()
    assert auto.active(remote=True) and not auto.active(remote=False)
    assert DeidSettings.from_env({"CHARTWISE_DEID": "on"}).active(remote=False)
    assert not DeidSettings.from_env({"CHARTWISE_DEID": "off"}).active(remote=True)
    assert DeidSettings.from_env({"CHARTWISE_DEID_SHIFT_DATES": "1"}).shift_dates
