"""Development question sets with gold citation keys computed from the raw FHIR JSON.

The gold side reads the resources themselves (codes, dates, values, reference ranges), never the
retrieval layer.  Questions are phrased the way clinicians ask (abbreviations, lay words, brand
names, several date formats).  ``mode`` says how recall is scored: ``all`` gold keys must be in the
pack (counts, allergy lists) or ``any`` one of them (a note that says something).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import date

from chartwise.fhir.reference_ranges import default_range

#: LOINC code -> clinician phrasings (how people ask; independent of what the record calls it)
LAB_WORDS: dict[str, list[str]] = {
    "4548-4": ["A1c", "HbA1c", "hemoglobin A1c", "sugar test"],
    "2339-0": ["glucose", "blood sugar", "BG"], "2345-7": ["glucose", "blood sugar"],
    "6299-2": ["BUN", "urea nitrogen"], "3094-0": ["BUN", "urea"],
    "38483-4": ["creatinine", "Cr", "creat"], "2160-0": ["creatinine", "serum creatinine"],
    "2947-0": ["sodium", "Na"], "2951-2": ["sodium", "Na"],
    "6298-4": ["potassium", "K"], "2823-3": ["potassium", "K+"],
    "2069-3": ["chloride", "Cl"], "2075-0": ["chloride"],
    "20565-8": ["bicarb", "CO2", "bicarbonate"], "2028-9": ["bicarb", "CO2"],
    "49765-1": ["calcium", "Ca"], "17861-6": ["calcium"],
    "2093-3": ["total cholesterol", "cholesterol"], "2571-8": ["triglycerides", "TG"],
    "18262-6": ["LDL", "bad cholesterol"], "13457-7": ["LDL"], "2085-9": ["HDL", "good cholesterol"],
    "6690-2": ["WBC", "white count"], "789-8": ["RBC"], "718-7": ["hemoglobin", "Hgb"], "4544-3": ["hematocrit", "Hct"],
    "777-3": ["platelets", "plt"], "787-2": ["MCV"],
    "33914-3": ["eGFR", "GFR"], "1742-6": ["ALT"], "1920-8": ["AST"], "1751-7": ["albumin"],
    "8480-6": ["systolic", "SBP"], "8462-4": ["diastolic BP"], "85354-9": ["BP", "blood pressure"],
    "8867-4": ["heart rate", "pulse", "HR"], "9279-1": ["respiratory rate", "RR"], "2708-6": ["sats", "SpO2", "O2 sat"],
    "59408-5": ["SpO2", "sats"], "8310-5": ["temp", "temperature"], "29463-7": ["weight", "wt"],
    "8302-2": ["height"], "39156-5": ["BMI"], "72514-3": ["pain score"],
}
MED_WORDS = {"atorvastatin": ["Lipitor"], "simvastatin": ["Zocor"], "metformin": ["Glucophage", "metformin"],
             "lisinopril": ["Zestril", "lisinopril"], "amlodipine": ["Norvasc"], "hydrochlorothiazide": ["HCTZ"],
             "acetaminophen": ["Tylenol"], "ibuprofen": ["Advil", "Motrin"], "naproxen": ["Aleve"],
             "amoxicillin": ["Amoxil", "amoxicillin"], "clopidogrel": ["Plavix"], "warfarin": ["Coumadin"],
             "insulin": ["insulin"], "albuterol": ["Ventolin", "albuterol"], "fluticasone": ["Flovent"],
             "loratadine": ["Claritin"], "cetirizine": ["Zyrtec"], "epinephrine": ["EpiPen"], "nitroglycerin": ["nitro"],
             "metoprolol": ["Lopressor"], "furosemide": ["Lasix"], "omeprazole": ["Prilosec"], "heparin": ["heparin"],
             "levothyroxine": ["Synthroid"], "oxycodone": ["oxycodone"], "penicillin": ["penicillin"],
             "ondansetron": ["Zofran"], "morphine": ["morphine"], "vancomycin": ["vanc"], "ceftriaxone": ["Rocephin"]}
COND_WORDS = {"diabetes": ["diabetes", "DM"], "hypertension": ["HTN", "hypertension"], "hyperlipidemia": ["high cholesterol"],
              "sinusitis": ["sinusitis", "sinus infection"], "pharyngitis": ["strep throat", "sore throat"],
              "bronchitis": ["bronchitis"], "asthma": ["asthma"], "anemia": ["anemia"], "obesity": ["obesity"],
              "prediabetes": ["prediabetes"], "pneumonia": ["pneumonia"], "atrial fibrillation": ["afib"],
              "heart failure": ["CHF"], "chronic kidney disease": ["CKD"], "osteoarthritis": ["OA", "osteoarthritis"],
              "depression": ["depression"], "anxiety": ["anxiety"], "otitis media": ["ear infection"], "covid": ["COVID"],
              "sepsis": ["sepsis"], "fracture": ["fracture"], "concussion": ["concussion"], "migraine": ["migraine"]}
VACC_WORDS = {"influenza": ["flu shot", "flu vaccine"], "td": ["tetanus shot"], "tdap": ["Tdap"], "pneumococcal": ["pneumonia vaccine"],
              "zoster": ["shingles vaccine"], "hep b": ["hep B vaccine"], "hpv": ["HPV vaccine"], "covid": ["COVID vaccine"]}


@dataclass
class Question:
    id: str
    question: str
    patient: str
    kind: str
    gold: list[str]
    mode: str = "all"  # all | any
    meta: dict = field(default_factory=dict)


def _fmt(d: date, style: int) -> str:
    return [d.isoformat(), f"{d.month}/{d.day}/{d.year}", f"{d:%B} {d.day}, {d.year}", f"{d.day} {d:%b} {d.year}"][style % 4]


def _codes(concept: dict | None) -> list[tuple[str, str, str]]:
    return [(c.get("system") or "", c.get("code") or "", c.get("display") or "") for c in (concept or {}).get("coding") or []]


def _day(res: dict, *names: str) -> str | None:
    for n in names:
        v = res.get(n)
        if isinstance(v, str) and len(v) >= 10:
            return v[:10]
        if isinstance(v, dict) and isinstance(v.get("start"), str):
            return v["start"][:10]
    return None


def _abnormal(res: dict) -> bool:
    for interp in res.get("interpretation") or []:
        for c in interp.get("coding") or []:
            if str(c.get("code", "")).upper() in {"H", "HH", "L", "LL", "A", "AA"}:
                return True
    q = res.get("valueQuantity") or {}
    v = q.get("value")
    if not isinstance(v, (int, float)):
        return False
    rr = (res.get("referenceRange") or [None])[0]
    if rr:
        lo, hi = (rr.get("low") or {}).get("value"), (rr.get("high") or {}).get("value")
    else:
        for s, c, _ in _codes(res.get("code")):
            found = default_range(s, c, q.get("unit") or q.get("code"))
            if found:
                lo, hi = found[0], found[1]
                break
        else:
            return False
    return (lo is not None and v < lo) or (hi is not None and v > hi)


def _words_for(table: dict[str, list[str]], display: str) -> list[str] | None:
    low = display.lower()
    for name, words in table.items():
        if re.search(r"(?<![a-z])" + re.escape(name) + r"(?![a-z])", low):
            return words
    return None


def questions_for_patient(record, rng: random.Random, pid_label: str, per_kind: int = 2) -> list[Question]:
    """Questions over one patient's raw resources (``record``: a PatientRecord; only ``.resources()`` is read)."""
    pid = record.id
    obs: dict[str, list[tuple[str, str, dict]]] = {}
    meds: dict[str, list[tuple[str, str]]] = {}
    conds: dict[str, list[tuple[str, str]]] = {}
    vaccs: list[tuple[str, str, str]] = []
    allergies: list[str] = []
    notes: list[tuple[str, str, str, str]] = []
    for res in record.resources():
        rt, key = res.get("resourceType"), f"{res.get('resourceType')}/{res.get('id')}"
        if rt == "Observation":
            day = _day(res, "effectiveDateTime", "effectivePeriod", "issued")
            codes = [c for s, c, _ in _codes(res.get("code")) if "loinc" in s]
            if day and codes and codes[0] in LAB_WORDS and (res.get("valueQuantity") or res.get("component")):
                obs.setdefault(codes[0], []).append((day, key, res))
        elif rt == "MedicationRequest":
            day = _day(res, "authoredOn")
            disp = " ".join(d for _, _, d in _codes(res.get("medicationCodeableConcept"))) or ((res.get("medicationCodeableConcept") or {}).get("text") or "")
            words = _words_for(MED_WORDS, disp)
            if day and words:
                name = next(n for n in MED_WORDS if MED_WORDS[n] is words)
                meds.setdefault(name, []).append((day, key))
        elif rt == "Condition":
            day = _day(res, "onsetDateTime", "onsetPeriod", "recordedDate")
            disp = " ".join(d for _, _, d in _codes(res.get("code"))) + " " + ((res.get("code") or {}).get("text") or "")
            words = _words_for(COND_WORDS, disp)
            if day and words and "prediabetes" not in disp.lower() or (day and words and words == COND_WORDS["prediabetes"]):
                name = next(n for n in COND_WORDS if COND_WORDS[n] is words)
                conds.setdefault(name, []).append((day, key))
        elif rt == "Immunization":
            day = _day(res, "occurrenceDateTime", "recorded")
            disp = " ".join(d for _, _, d in _codes(res.get("vaccineCode"))) + " " + ((res.get("vaccineCode") or {}).get("text") or "")
            if day:
                vaccs.append((day, key, disp))
        elif rt == "AllergyIntolerance":
            allergies.append(key)
        elif rt == "DocumentReference":
            import base64
            day = _day(res, "date")
            for content in res.get("content") or []:
                data = (content.get("attachment") or {}).get("data")
                if data and day:
                    text = base64.b64decode(data).decode("utf-8", "replace")
                    label = ((res.get("type") or {}).get("coding") or [{}])[0].get("display") or "note"
                    notes.append((day, key, label, text))
    out: list[Question] = []
    n = 0

    def add(kind: str, q: str, gold: list[str], mode: str = "all") -> None:
        nonlocal n
        n += 1
        out.append(Question(f"{pid_label}-{n}", q, pid, kind, gold, mode))

    codes = sorted(obs, key=lambda c: -len(obs[c]))
    rng.shuffle(codes)
    for code in codes[:per_kind + 1]:
        series = sorted(obs[code], key=lambda x: (x[0], x[1]))
        word = rng.choice(LAB_WORDS[code])
        last_day = series[-1][0]
        gold = [k for d, k, _ in series if d == last_day]
        add("latest", rng.choice([f"latest {word}?", f"What was the most recent {word}?", f"last {word} value", f"current {word}"]), gold, "any")
        # at or before a date
        d, k, _ = rng.choice(series)
        style = rng.randrange(4)
        same = [kk for dd, kk, _ in series if dd == d]
        add("at_date", rng.choice([f"{word} on {_fmt(date.fromisoformat(d), style)}", f"What was the {word} on {_fmt(date.fromisoformat(d), style)}?"]), same, "any")
        # count in a year
        year = rng.choice(sorted({dd[:4] for dd, _, _ in series}))
        in_year = [kk for dd, kk, _ in series if dd.startswith(year)]
        if len(in_year) <= 25:
            add("count", f"How many {word} results in {year}?", in_year, "all")
        abn = [(dd, kk) for dd, kk, r in series if _abnormal(r)]
        if abn:
            last_abn = max(abn)[0]
            add("abnormal", f"most recent abnormal {word}", [kk for dd, kk in abn if dd == last_abn], "any")
    for name in sorted(conds)[:per_kind]:
        items = sorted(conds[name])
        word = rng.choice(COND_WORDS[name])
        add("first", rng.choice([f"When was {word} first diagnosed?", f"onset of {word}?"]), [k for d, k in items if d == items[0][0]], "any")
    for name in sorted(meds)[:per_kind]:
        items = sorted(meds[name])
        word = rng.choice(MED_WORDS[name])
        add("ever", rng.choice([f"Has the patient ever been on {word}, and when last?", f"Was {word} ever prescribed?"]),
            [k for d, k in items if d == items[-1][0]], "any")
    if vaccs:
        vaccs.sort()
        add("vaccine", "When was the last vaccine given?", [k for d, k, _ in vaccs if d == vaccs[-1][0]], "any")
        flu = [(d, k) for d, k, disp in vaccs if "influenza" in disp.lower()]
        if flu:
            add("vaccine", "last flu shot?", [k for d, k in flu if d == max(flu)[0]], "any")
    if allergies:
        add("allergies", rng.choice(["What allergies does the patient have?", "List her allergies", "any allergies?"]), allergies, "all")
    rng.shuffle(notes)
    for day, key, label, text in notes[:per_kind + 2]:
        m = re.search(r"# Chief Complaint\s*\n- ([^\n]+)", text)
        m2 = re.search(r"presenting with ([^.\n]+)", text)
        if m:
            add("note", f"What was the chief complaint in the {label.lower()} on {_fmt(date.fromisoformat(day), rng.randrange(4))}?", [key], "any")
        elif m2:
            add("note", f"What did the note on {_fmt(date.fromisoformat(day), rng.randrange(4))} say the patient presented with?", [key], "any")
    return out


def build_set(records, seed: int = 0, limit_patients: int | None = None, per_kind: int = 2, label: str = "q") -> list[Question]:
    rng = random.Random(seed)
    out: list[Question] = []
    patients = records.patients()[:limit_patients] if limit_patients else records.patients()
    for i, p in enumerate(patients):
        out.extend(questions_for_patient(p, rng, f"{label}{i}", per_kind))
    return out


def recall(question: Question, citations: list[str]) -> float:
    got = {c.split("#", 1)[0] for c in citations}
    if not question.gold:
        return 1.0
    if question.mode == "any":
        return 1.0 if any(g in got for g in question.gold) else 0.0
    return sum(1 for g in question.gold if g in got) / len(question.gold)
