"""Graders against hand-made correct and incorrect answers, for every task type and metric."""
from __future__ import annotations

import json

import pytest

from chartwise import eval_graders as g
from chartwise import eval_medagentbench as m

NOW = "2023-11-13T10:15:00+00:00"


# ---------------------------------------------------------------- normalisation
@pytest.mark.parametrize("text,want", [("HbA1c 7.9% on 2019-03-02", "2019-03-02"), ("on 03/02/2019", "2019-03-02"),
                                        ("March 2, 2019", "2019-03-02"), ("Mar 2nd 2019", "2019-03-02"), ("no date", None)])
def test_normalize_date(text, want):
    assert g.normalize_date(text) == want


@pytest.mark.parametrize("text,want", [("Yes, she was.", "yes"), ("No.", "no"), ("maybe", "maybe"),
                                        ("She has not been diagnosed with it", "no"), ("True", "yes"), ("the value", None)])
def test_normalize_yes_no(text, want):
    assert g.normalize_yes_no(text) == want


def test_values_at_written_precision():
    assert g.values_equal("68.46", 68.4619536315922)
    assert g.values_equal("68.5 mg/dL", 68.4619536315922)
    assert g.values_equal("1,234", 1234)
    assert not g.values_equal("68.47", 68.4619536315922)
    assert g.values_equal("4.55", 4.5, tolerance=0.1) and not g.values_equal("4.65", 4.5, tolerance=0.1)
    assert g.answer_has_value("Last glucose was 95.0 mg/dL on 2019-06-25 [Observation/x]", 95.01199782233167)
    assert not g.answer_has_value("Last glucose was 97 mg/dL", 95.01199782233167)


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize("gold,right,wrong", [
    ({"type": "value", "value": 7.564455}, "HbA1c was 7.56% [Observation/a]", "HbA1c was 7.9% [Observation/a]"),
    ({"type": "date", "value": "2019-06-25"}, "Last measured on June 25, 2019.", "Last measured on 2019-06-24."),
    ({"type": "yes_no", "value": "yes"}, "Yes — diagnosed 2010 [Condition/c].", "No, there is no such diagnosis."),
    ({"type": "text", "value": "Nasal Congestion"}, "The chief complaint was nasal congestion.", "The complaint was cough."),
    ({"type": "abstain", "value": None}, "No troponin result is documented in the record.", "Troponin I was 0.01 ng/mL."),
])
def test_grade_answer(gold, right, wrong):
    assert g.grade_answer(right, gold)["correct"]
    assert not g.grade_answer(wrong, gold)["correct"]


@pytest.mark.parametrize("text", ["Not found in the record.", "The record does not contain a magnesium level.",
                                  "I could not find any TSH result.", "There is no lactate measurement in the chart."])
def test_abstention_detected(text):
    assert g.is_abstention(text)


@pytest.mark.parametrize("text", ["Potassium was 4.2 mmol/L on 2019-06-25.", "Yes, she has hypertension."])
def test_not_abstention(text):
    assert not g.is_abstention(text)


def test_abstention_accuracy():
    assert g.abstention_accuracy([(True, True), (False, False), (True, False), (False, True)]) == 0.5
    assert g.abstention_accuracy([]) is None


# ---------------------------------------------------------------- citations
def test_evidence_recall_and_citation_precision():
    gold = ["Observation/a", "DocumentReference/n"]
    assert g.evidence_recall(["Observation/a", "DocumentReference/n#10-40", "Condition/x"], gold) == 1.0
    assert g.evidence_recall(["Observation/a"], gold) == 0.5
    assert g.evidence_recall(["Condition/x"], gold) == 0.0
    assert g.evidence_recall(["Condition/x"], []) is None
    assert g.citation_precision(["Observation/a", "Condition/x"], gold) == 0.5
    assert g.citation_precision(["Observation/a", "Observation/b"], gold, supporting=["Observation/b"]) == 1.0
    assert g.citation_precision([], gold) is None
    assert g.keys_in("HbA1c 7.9% [Observation/abc] per note [DocumentReference/d#3-9] and [PMID: 123]") == \
        ["Observation/abc", "DocumentReference/d", "PMID:123"]


# ---------------------------------------------------------------- literature
@pytest.mark.parametrize("answer,want", [("Answer: yes. The trial showed [PMID:1].", "yes"), ("No. It did not.", "no"),
                                          ("Decision - maybe; evidence is mixed", "maybe"), ("The evidence suggests yes", "yes")])
def test_pubmedqa_decision(answer, want):
    assert g.pubmedqa_decision(answer) == want


def test_decision_accuracy_and_retrieval_hit():
    assert g.decision_accuracy([("yes", "yes"), ("no", "yes"), (None, "maybe")]) == pytest.approx(1 / 3)
    assert g.retrieval_hit(["PMID:1", "PMID:2", "PMID:3"], "2", 5) == (True, 2)
    assert g.retrieval_hit(["PMID:1", "PMID:2", "PMID:3"], "3", 2) == (False, 3)
    assert g.retrieval_hit(["PMID:1"], "9", 5) == (False, None)


# ---------------------------------------------------------------- MedAgentBench rules
def _patient(pid="S1", dob="1950-11-14"):
    return {"resourceType": "Patient", "id": pid, "birthDate": dob, "name": [{"given": ["Ann"], "family": "Lee"}],
            "identifier": [{"value": f"MRN-{pid}"}]}


def _obs(pid, code, when, value, oid):
    return {"resourceType": "Observation", "id": oid, "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "x", "code": code}]}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "u"}}


RES = [_patient(), _patient("S2", "1980-01-01"),
       _obs("S1", "MG", "2023-11-12T08:00:00+00:00", 1.5, "o1"),   # outside 24 h
       _obs("S1", "MG", "2023-11-13T09:00:00+00:00", 1.8, "o2"),   # latest within 24 h
       _obs("S1", "MG", "2023-11-12T12:00:00+00:00", 1.7, "o3"),
       _obs("S1", "GLU", "2023-11-13T01:00:00+00:00", 100.0, "g1"),
       _obs("S1", "GLU", "2023-11-13T05:00:00-05:00", 121.0, "g2"),  # 10:00 UTC, latest
       _obs("S1", "GLU", "2023-11-10T05:00:00+00:00", 300.0, "g3"),
       _obs("S1", "A1C", "2021-03-01T09:30:00+00:00", 6.1, "a1"),
       _obs("S2", "GLU", "2023-11-13T09:00:00+00:00", 90.0, "g4")]


def task(kind, mrn="S1", context=f"It's {NOW} now.", sol=None):
    return {"id": f"{kind}_1", "instruction": "...", "context": context, "eval_MRN": mrn, "sol": sol}


@pytest.mark.parametrize("t,right,wrong", [
    (task("task1", sol=["S1"]), '["S1"]', '["S2"]'),
    (task("task1", sol=["Patient not found"]), '["Patient not found"]', '["S1"]'),
    (task("task2"), "[72]", "[73]"),                 # birthday tomorrow: still 72
    (task("task4"), "[1.8]", "[1.7]"),
    (task("task4", "S2"), "[-1]", "[1.8]"),          # no MG within 24 h
    (task("task5"), "[]", "[1.5]"),                  # [] accepted for check-and-order types
    (task("task6"), "[110.55]", "[110.35]"),          # mean (100 + 121) / 2 = 110.5, tolerance 0.1
    (task("task6", "S2", context="It's 2023-11-20T10:15:00+00:00 now."), "[-1]", "[90]"),
    (task("task7"), "[121.0]", "[100.0]"),
    (task("task9", context=f"It's {NOW} now. The code for potassium is \"MG\"."), "[1.8]", "[-1]"),
    (task("task10"), '[6.1, "2021-03-01T09:30:00+00:00"]', "[6.1]"),
])
def test_medagentbench_rules(t, right, wrong):
    ref = m.reference_solution(t, RES)
    assert m.grade(t, right, ref) is True
    assert m.grade(t, wrong, ref) is False
    assert m.grade(t, "not json", ref) is False


def test_medagentbench_context_and_scope():
    t = task("task4", context='It\'s 2019-06-25T06:22:04+00:00 now. The code for potassium is "6298-4". The answer ...')
    assert m.context_now(t).isoformat() == "2019-06-25T06:22:04+00:00"
    assert m.context_code(t) == "6298-4"
    assert m.context_code(task("task6")) == "GLU"
    assert m.reference_solution(task("task3"), RES) is None and m.grade(task("task8"), "[]", None) is None
    assert m.finish_payload("Looked it up.\nFINISH([4.2])") == "[4.2]"
    assert m.patient_for_mrn(RES, "MRN-S2")["id"] == "S2"


def test_medagentbench_runner_marks_write_tasks_not_graded():
    class Records:  # the facts solver is exercised on real data in test_eval_suites
        class refs:
            by_key = {f"{r['resourceType']}/{r['id']}": r for r in RES}

    def answer(t, records):
        return json.dumps(m.reference_solution(t, RES)), []

    res = m.run_tasks([task("task3"), task("task4"), task("task8")], Records(), answer=answer)
    assert [r.graded for r in res] == [False, True, False]
    s = m.summarize(res)
    assert s["accuracy"] == 1.0 and len(s["not_graded"]) == 2
