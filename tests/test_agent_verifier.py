from chartwise.agent.verifier import citations_in, extract_claims, verify

REG = {
    "Observation/a": {"key": "Observation/a", "text": "Hemoglobin A1c = 7.89 %", "date": "2019-03-02"},
    "Observation/b": {"key": "Observation/b", "text": "Systolic Blood Pressure = 128 mm[Hg]", "date": "2020-01-05"},
    "DocumentReference/n": {"key": "DocumentReference/n", "text": "Patient reports chest pain since 2020-01-03.", "date": "2020-01-05"},
    "PMID:123": {"key": "PMID:123", "text": "Metformin lowered HbA1c by 1.1% in 300 patients.", "date": None},
}


def test_supported_statements_kept_with_rounding_units_and_dates():
    v = verify("HbA1c was 7.9% on March 2, 2019 [Observation/a]. BP 128 mmHg [Observation/b].", REG)
    assert v.supported == 2 and not v.unsupported
    assert v.citations == ["Observation/a", "Observation/b"]


def test_fabricated_key_removed_and_listed():
    v = verify("BP 128 mmHg [Observation/b, Observation/zzz]. Potassium 4.4 [Observation/fake].", REG)
    assert "Observation/zzz" not in v.answer and "Observation/fake" not in v.answer and "Potassium" not in v.answer
    assert {u["citations"][0] for u in v.unsupported} == {"Observation/zzz", "Observation/fake"}


def test_wrong_number_date_unit_and_uncited():
    v = verify("HbA1c was 8.4% [Observation/a].\nIt was measured 2019-04-01 [Observation/a].\n"
               "HbA1c 7.89 mg/dL [Observation/a].\nShe is doing well.", REG)
    assert v.supported == 0 and v.answer == ""
    reasons = " ".join(u["reason"] for u in v.unsupported)
    assert "number 8.4" in reasons and "date 2019-04-01" in reasons and "unit mg/dL" in reasons and "no citation" in reasons


def test_note_span_and_pmid():
    assert verify("Chest pain since 2020-01-03 [DocumentReference/n#0-44].", REG).supported == 1
    assert verify("Chest pain [DocumentReference/n#0-900].", REG).supported == 0
    assert verify("Yes.\nMetformin lowered HbA1c by 1.1% [PMID:123].", REG).answer.startswith("Yes.")


def test_headings_dropped_when_empty():
    v = verify("## Labs\n- HbA1c 7.9% [Observation/a].\n## Vitals\n- Pulse 99 [Observation/b].", REG)
    assert "## Labs" in v.answer and "## Vitals" not in v.answer


def test_claims_and_citations():
    c = extract_claims("On 2 March 2019 the 1st value was 10.5 mg/dL (COVID-19, n=1,200), in 2019")
    assert c.dates == ["2019-03-02"] and c.numbers == ["10.5", "1200"] and c.units == ["mg/dL"] and c.years == ["2019"]
    assert citations_in("x [Observation/a; PMID: 12] y [final] [DocumentReference/n#1-5]") == [
        "Observation/a", "PMID:12", "DocumentReference/n#1-5"]
