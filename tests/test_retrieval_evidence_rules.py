"""Evidence-pack rules on small hand-made records: the resource a clinician means among look-alikes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

PID = "p-rules"
SUBJECT = {"reference": f"Patient/{PID}"}
LOINC, RXNORM, SCT = "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm", "http://snomed.info/sct"


def _code(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _category(code: str) -> list[dict]:
    return [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}]


RESOURCES = [
    {"resourceType": "Patient", "id": PID, "birthDate": "1960-05-01"},
    # one creatinine test: its order (named verbatim "Creatinine") and its results
    {"resourceType": "ServiceRequest", "id": "sr-creat", "status": "completed", "intent": "order", "subject": SUBJECT,
     "code": _code(LOINC, "2160-0", "Creatinine"), "authoredOn": "2024-03-02T08:00:00Z"},
    {"resourceType": "Observation", "id": "obs-creat-1", "status": "final", "subject": SUBJECT, "category": _category("laboratory"),
     "code": _code(LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
     "effectiveDateTime": "2024-01-10T08:00:00Z", "valueQuantity": {"value": 1.0, "unit": "mg/dL"}},
    {"resourceType": "Observation", "id": "obs-creat-2", "status": "final", "subject": SUBJECT, "category": _category("laboratory"),
     "code": _code(LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
     "effectiveDateTime": "2024-03-02T09:00:00Z", "valueQuantity": {"value": 1.4, "unit": "mg/dL"}},
    # acetaminophen: ordered in January and in March, last given in May
    {"resourceType": "MedicationRequest", "id": "mr-apap-0", "status": "completed", "intent": "order", "subject": SUBJECT,
     "medicationCodeableConcept": _code(RXNORM, "161", "Acetaminophen (Tylenol)"), "authoredOn": "2024-01-05T10:00:00Z"},
    {"resourceType": "MedicationRequest", "id": "mr-apap", "status": "completed", "intent": "order", "subject": SUBJECT,
     "medicationCodeableConcept": _code(RXNORM, "161", "Acetaminophen (Tylenol)"), "authoredOn": "2024-03-01T10:00:00Z"},
    {"resourceType": "MedicationAdministration", "id": "ma-apap", "status": "completed", "subject": SUBJECT,
     "medicationCodeableConcept": _code(RXNORM, "161", "Acetaminophen (Tylenol)"), "effectiveDateTime": "2024-05-20T10:00:00Z"},
    # one knee X-ray recorded twice: as a Procedure and as an ImagingStudy
    {"resourceType": "Procedure", "id": "proc-knee", "status": "completed", "subject": SUBJECT,
     "code": _code(SCT, "74016001", "Knee X-ray"), "performedDateTime": "2023-06-07T10:00:00Z"},
    {"resourceType": "ImagingStudy", "id": "img-knee", "status": "available", "subject": SUBJECT,
     "started": "2023-06-07T10:05:00Z", "series": [{"uid": "1.2.3", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"},
                                                      "bodySite": {"display": "Knee"}}]},
    # a condition whose display carries SNOMED's semantic tag, next to a vital with a shorter name inside it
    {"resourceType": "Condition", "id": "cond-obese", "subject": SUBJECT, "onsetDateTime": "2015-02-01",
     "code": _code(SCT, "162864005", "Body mass index 30+ - obesity (finding)")},
    {"resourceType": "Observation", "id": "obs-bmi", "status": "final", "subject": SUBJECT, "category": _category("vital-signs"),
     "code": _code(LOINC, "39156-5", "Body Mass Index"), "effectiveDateTime": "2024-01-10T08:00:00Z",
     "valueQuantity": {"value": 31.2, "unit": "kg/m2"}},
]


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    from chartwise.fhir.store import load
    from chartwise.tools import IndexSettings, configure

    folder = tmp_path_factory.mktemp("rules")
    configure(IndexSettings(path=folder / "idx"))
    path = Path(folder) / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": r} for r in RESOURCES]}))
    recs = load(path)
    assert not recs.quarantined, recs.quarantined
    yield recs.patient()
    configure(None)


def _keys(question: str, patient) -> list[str]:
    from chartwise.tools import build_evidence

    return [i.citation for i in build_evidence(question, patient).items]


@pytest.mark.parametrize("question", ["last creatinine value", "What was the most recent Creatinine?", "latest Cr"])
def test_a_test_named_like_its_order_still_gives_the_result_first(patient, question):
    keys = _keys(question, patient)
    assert keys[0] == "Observation/obs-creat-2", keys


def test_ever_on_a_drug_gives_the_last_order_and_the_last_administration(patient):
    keys = _keys("Has she ever been on Tylenol?", patient)
    assert {"MedicationRequest/mr-apap", "MedicationAdministration/ma-apap"} <= set(keys), keys


def test_naming_the_resource_type_picks_it_among_equal_concepts(patient):
    assert _keys("When was the digital radiography imaging study performed?", patient)[0] == "ImagingStudy/img-knee"
    assert _keys("When was the knee x-ray procedure performed?", patient)[0] == "Procedure/proc-knee"


def test_terminology_tags_do_not_hide_a_named_condition(patient):
    keys = _keys("Has the patient ever been diagnosed with Body mass index 30+ - obesity?", patient)
    assert keys[0] == "Condition/cond-obese", keys


def test_named_resource_types_most_specific_first():
    from chartwise.tools.question import named_resource_types

    assert named_resource_types("when was the imaging study performed")[:2] == ["ImagingStudy", "Procedure"]
    assert named_resource_types("was it prescribed or given") == ["MedicationRequest", "MedicationAdministration"]
    assert named_resource_types("latest potassium") == []
