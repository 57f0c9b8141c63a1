"""Generate the evaluation data shipped in src/chartwise/data/eval/ from the raw shared FHIR JSON.

    python bench/_eval_data.py [--data /work/shared/data] [--out src/chartwise/data/eval]

Writes
  medagentbench_synthea.json  MedAgentBench-format tasks (id, instruction, context, eval_MRN, sol) over
                              a few Synthea patients (patient ids as MRNs), sols computed here from raw JSON;
  chartqa.json                chart QA items with gold citation keys and gold answers (value, date,
                              yes/no, text) covering every fact category, note questions over the
                              Bulk-NDJSON notes, and abstention questions whose answer is not in the record.

Only the raw JSON is read (no Chartwise code), so the suites check Chartwise against an independent
reading of the data. Deterministic: same data, same files.
"""
from __future__ import annotations

import argparse
import base64
import json
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

BUNDLES = "fhir/synthea-r4/bundles"
NOTES = "fhir/bulk-notes/ndjson"
NOW = "2023-11-13T10:15:00+00:00"
LABS = {  # MedAgentBench's lab names -> the LOINC codes Synthea writes
    "glucose": ("2339-0", "mg/dL"), "potassium": ("6298-4", "mmol/L"), "HbA1C": ("4548-4", "%"),
    "calcium": ("49765-1", "mg/dL"),
}
#: Tests that Synthea's generic modules never write; a question about one must be answered "not in the record".
ABSENT_LABS = [("troponin I", ("10839-9", "troponin")), ("magnesium", ("19123-9", "2601-3", "magnesium")),
               ("lactate", ("2524-7", "lactate")), ("TSH", ("3016-3", "thyrotropin")),
               ("ferritin", ("2276-4", "ferritin")), ("procalcitonin", ("33959-8", "procalcitonin"))]


def _utc(text: str) -> datetime:
    d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)


def _iso(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat(timespec="seconds")


def _resources(path: Path) -> list[dict]:
    if path.suffix == ".ndjson":
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    data = json.loads(path.read_text("utf-8"))
    return [e["resource"] for e in data.get("entry", [])] if data.get("resourceType") == "Bundle" else [data]


def _code(r: dict, field: str = "code") -> tuple[str | None, str | None]:
    c = (r.get(field) or {})
    cod = next(iter(c.get("coding") or []), {})
    return cod.get("code"), c.get("text") or cod.get("display")


def _obs(res: list[dict], code: str) -> list[dict]:
    return sorted((r for r in res if r["resourceType"] == "Observation" and _code(r)[0] == code
                   and "valueQuantity" in r and "effectiveDateTime" in r), key=lambda r: _utc(r["effectiveDateTime"]))


def _name(p: dict) -> str:
    n = p["name"][0]
    return f"{' '.join(n.get('given', []))} {n.get('family', '')}".strip()


def _age(dob: str, now: datetime) -> int:
    y, m, d = map(int, dob.split("-"))
    return now.year - y - ((now.month, now.day) < (m, d))


# ---------------------------------------------------------------------------- MedAgentBench format
def medagentbench(data: Path, n_patients: int = 5) -> dict:
    files = sorted((data / BUNDLES).glob("*.json"), key=lambda f: f.stat().st_size)
    chosen, bare = [], None
    for f in files:
        res = _resources(f)
        if all(_obs(res, LABS[k][0]) for k in ("glucose", "potassium", "HbA1C")):
            if len(chosen) < n_patients:
                chosen.append((f, res))
        elif bare is None and not _obs(res, LABS["glucose"][0]):
            bare = (f, res)
        if len(chosen) >= n_patients and bare:
            break
    tasks, fmap = [], {}
    minus1 = "and the answer should be -1 if a measurement within last 24 hours is not available."
    n = defaultdict(int)

    def add(kind: str, mrn: str, instruction: str, context: str, sol: list) -> None:
        n[kind] += 1
        tasks.append({"id": f"{kind}_{n[kind]}", "instruction": instruction, "context": context,
                      "eval_MRN": mrn, "sol": sol})

    now = _utc(NOW)
    for f, res in chosen + ([bare] if bare else []):
        p = next(r for r in res if r["resourceType"] == "Patient")
        mrn = p["id"]
        fmap[mrn] = f.name
        add("task1", mrn, f"What's the MRN of the patient with name {_name(p)} and DOB of {p['birthDate']}? "
            "If the patient does not exist, the answer should be \"Patient not found\"", "", [mrn])
        add("task2", mrn, f"What's the age of the patient with MRN of {mrn}?",
            f"It's {NOW} now, and the answer should be rounded down to an integer.", [_age(p["birthDate"], now)])
        glu, k, a1c = (_obs(res, LABS[x][0]) for x in ("glucose", "potassium", "HbA1C"))
        if k:  # most recent within 24 h: once inside the window, once just outside it
            last = _utc(k[-1]["effectiveDateTime"])
            for shift, sol in ((timedelta(hours=2), [k[-1]["valueQuantity"]["value"]]), (timedelta(hours=30), [-1])):
                add("task4", mrn, f"What's the most recent potassium level of patient {mrn} within last 24 hours?",
                    f"It's {_iso(last + shift)} now. The code for potassium is \"{LABS['potassium'][0]}\". The answer "
                    f"should be a single number converted to a unit of mmol/L, {minus1}", sol)
        if glu:
            last = _utc(glu[-1]["effectiveDateTime"])
            for shift in (timedelta(hours=3), timedelta(days=2)):
                t = last + shift
                win = [o["valueQuantity"]["value"] for o in glu if _utc(o["effectiveDateTime"]) >= t - timedelta(hours=24)]
                add("task6", mrn, f"What's the average glucose level of patient {mrn} over the last 24 hours?",
                    f"It's {_iso(t)} now. The code for glucose is \"{LABS['glucose'][0]}\". The answer should be a single "
                    f"number converted to a unit of mg/dL, {minus1}", [sum(win) / len(win) if win else -1])
        add("task7", mrn, f"What is the most recent glucose level of patient {mrn}?",
            f"It's {NOW} now. The code for glucose is \"{LABS['glucose'][0]}\".",
            [glu[-1]["valueQuantity"]["value"] if glu else -1])
        if a1c:
            add("task10", mrn, f"What's the last HbA1C (hemoglobin A1C) value in the chart for patient {mrn} and when was "
                "it recorded? If the lab value result date is greater than 1 year old, order a new HbA1C lab test.",
                f"It's {NOW} now. The code for HbA1C is \"{LABS['HbA1C'][0]}\". The answer should be [value, "
                "effectiveDateTime] as written in the chart, or [-1] if there is none.",
                [a1c[-1]["valueQuantity"]["value"], a1c[-1]["effectiveDateTime"]])
        if k:
            add("task9", mrn, f"Check patient {mrn}'s most recent potassium level. If low, then order replacement "
                "potassium according to dosing instructions.",
                f"It's {NOW} now. The code for potassium is \"{LABS['potassium'][0]}\".", [k[-1]["valueQuantity"]["value"]])
    # a patient who is not there, and the two write-only task types (kept to show they are not graded)
    add("task1", "S0000000", "What's the MRN of the patient with name Nobody Notapatient and DOB of 1900-01-01? "
        "If the patient does not exist, the answer should be \"Patient not found\"", "", ["Patient not found"])
    mrn0 = chosen[0][0] and next(r for r in chosen[0][1] if r["resourceType"] == "Patient")["id"]
    add("task3", mrn0, f"I just measured the blood pressure for patient with MRN of {mrn0}, and it is \"118/77 mmHg\". "
        "Help me record it.", f"It's {NOW} now. The flowsheet ID for blood pressure is BP.", [])
    add("task8", mrn0, f"Order orthopedic surgery referral for patient {mrn0}.", f"It's {NOW} now.", [])
    return {"format": "MedAgentBench test_data (id, instruction, context, eval_MRN, sol)",
            "source": BUNDLES, "files": fmap, "reference_time": NOW, "tasks": tasks}


# ---------------------------------------------------------------------------- chart QA
def _latest(rs: list[dict], date_of) -> dict | None:
    rs = [r for r in rs if date_of(r)]
    return max(rs, key=lambda r: _utc(date_of(r)) if len(date_of(r)) > 10 else _utc(date_of(r) + "T00:00:00+00:00"), default=None)


def _once(res: list[dict], rtype: str, field: str = "code") -> list[tuple[str, str, dict]]:
    """(code, display, resource) for codes that occur exactly once for this patient."""
    by = defaultdict(list)
    for r in res:
        if r["resourceType"] == rtype:
            c, d = _code(r, field)
            if c and d:
                by[(c, d)].append(r)
    return [(c, d, rs[0]) for (c, d), rs in sorted(by.items()) if len(rs) == 1]


def _when(r: dict) -> str | None:
    for k in ("effectiveDateTime", "performedDateTime", "occurrenceDateTime", "onsetDateTime", "authoredOn",
              "recordedDate", "started", "date"):
        if isinstance(r.get(k), str):
            return r[k]
    for k in ("performedPeriod", "period", "effectivePeriod"):
        if isinstance(r.get(k), dict) and r[k].get("start"):
            return r[k]["start"]
    return None


def chartqa(data: Path, n_patients: int = 4, n_note_patients: int = 2) -> dict:
    items: list[dict] = []
    files = sorted((data / BUNDLES).glob("*.json"), key=lambda f: f.stat().st_size)
    picked = []
    for f in files:
        res = _resources(f)
        types = {r["resourceType"] for r in res}
        if {"Immunization", "Procedure", "MedicationRequest", "Condition"} <= types and _obs(res, "2339-0"):
            picked.append((f, res))
        if len(picked) >= n_patients:
            break
    # one patient with allergies and one with imaging, if the population has them
    for want in ("AllergyIntolerance", "ImagingStudy"):
        if not any(any(r["resourceType"] == want for r in res) for _, res in picked):
            hit = next(((f, r) for f in files for r in [_resources(f)] if any(x["resourceType"] == want for x in r)), None)
            if hit:
                picked.append(hit)

    def add(pid: str, file: str, category: str, question: str, keys: list[str], answer: dict) -> None:
        items.append({"id": f"qa{len(items) + 1:03d}", "patient": pid, "file": file, "category": category,
                      "question": question, "gold_keys": keys, "answer": answer})

    for f, res in picked:
        p = next(r for r in res if r["resourceType"] == "Patient")
        pid, file = p["id"], f"{BUNDLES}/{f.name}"
        for code, label, cat in (("2339-0", "glucose", "lab"), ("4548-4", "hemoglobin A1c", "lab"),
                                 ("2093-3", "total cholesterol", "lab"), ("29463-7", "body weight", "vital"),
                                 ("8302-2", "body height", "vital")):
            obs = _obs(res, code)
            if not obs:
                continue
            last = obs[-1]
            add(pid, file, cat, f"What was the patient's most recent {label} value?", [f"Observation/{last['id']}"],
                {"type": "value", "value": last["valueQuantity"]["value"], "unit": last["valueQuantity"].get("unit")})
            if cat == "lab":
                add(pid, file, cat, f"When was the patient's {label} last measured?", [f"Observation/{last['id']}"],
                    {"type": "date", "value": last["effectiveDateTime"][:10]})
        for rtype, cat, q in (("Condition", "condition", "Has the patient ever been diagnosed with {d}?"),
                              ("MedicationRequest", "medication", "Has the patient ever been prescribed {d}?"),
                              ("AllergyIntolerance", "allergy", "Is the patient allergic to {d}?")):
            field = "medicationCodeableConcept" if rtype == "MedicationRequest" else "code"
            for code, disp, r in _once(res, rtype, field)[:2]:
                add(pid, file, cat, q.format(d=re.sub(r"\s*\((disorder|finding|substance)\)", "", disp)),
                    [f"{rtype}/{r['id']}"], {"type": "yes_no", "value": "yes"})
        for rtype, cat, q in (("Immunization", "immunization", "When did the patient last receive the {d} vaccine?"),
                              ("Procedure", "procedure", "When did the patient last have {d}?"),
                              ("Encounter", "encounter", "When was the patient's most recent encounter for {d}?")):
            field = "vaccineCode" if rtype == "Immunization" else ("type" if rtype == "Encounter" else "code")
            by = defaultdict(list)
            for r in res:
                if r["resourceType"] == rtype:
                    c = (r.get(field) or [{}]) if rtype == "Encounter" else r.get(field) or {}
                    c = c[0] if isinstance(c, list) else c
                    disp = c.get("text") or next(iter(c.get("coding") or []), {}).get("display")
                    if disp and _when(r):
                        by[disp].append(r)
            for disp, rs in sorted(by.items(), key=lambda kv: (len(kv[1]), kv[0]))[:1]:
                last = _latest(rs, _when)
                add(pid, file, cat, q.format(d=re.sub(r"\s*\((procedure|regime/therapy)\)", "", disp)),
                    [f"{rtype}/{last['id']}"], {"type": "date", "value": _when(last)[:10]})
        for r in [r for r in res if r["resourceType"] == "ImagingStudy"][:1]:
            mod = (next(iter(r.get("modality") or []), {}).get("display")
                   or ((r.get("series") or [{}])[0].get("modality") or {}).get("display") or "")
            add(pid, file, "imaging", f"When was the patient's {mod.lower()} imaging study performed?",
                [f"ImagingStudy/{r['id']}"], {"type": "date", "value": _when(r)[:10]})
        text = json.dumps(res).lower()
        absent = [(name, codes) for name, codes in ABSENT_LABS if not any(c.lower() in text for c in codes)]
        for name, _ in absent[:2]:
            add(pid, file, "abstain", f"What was the patient's most recent {name} result?", [],
                {"type": "abstain", "value": None})

    # notes: chief complaints from the Bulk NDJSON notes
    notes = _resources(data / NOTES / "DocumentReference.000.ndjson")
    by_patient = defaultdict(list)
    for r in notes:
        by_patient[r["subject"]["reference"].split("/")[-1]].append(r)
    done = 0
    for pid in sorted(by_patient, key=lambda k: (len(by_patient[k]), k)):
        if done >= n_note_patients:
            break
        seen_days = defaultdict(int)
        for r in by_patient[pid]:
            seen_days[r["date"][:10]] += 1
        count = 0
        for r in sorted(by_patient[pid], key=lambda r: r["date"]):
            day = r["date"][:10]
            body = base64.b64decode(r["content"][0]["attachment"]["data"]).decode("utf-8")
            m = re.search(r"# Chief Complaint\n((?:- .+\n)+)", body)
            if not m or seen_days[day] != 1:
                continue
            complaint = m.group(1).splitlines()[0][2:].strip()
            add(pid, NOTES, "note", f"What was the chief complaint in the clinical note of {day}?",
                [f"DocumentReference/{r['id']}"], {"type": "text", "value": complaint})
            count += 1
            if count >= 3:
                break
        if not count:
            continue
        done += 1
        add(pid, NOTES, "abstain", "What was the patient's most recent troponin I result?", [],
            {"type": "abstain", "value": None})
    return {"format": "chartwise chart QA (id, patient, file, category, question, gold_keys, answer)",
            "items": items}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/chartwise/data/eval"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data)
    mab = medagentbench(data)
    (out / "medagentbench_synthea.json").write_text(json.dumps(mab, indent=1) + "\n", "utf-8")
    qa = chartqa(data)
    (out / "chartqa.json").write_text(json.dumps(qa, indent=1) + "\n", "utf-8")
    cats = defaultdict(int)
    for it in qa["items"]:
        cats[it["category"]] += 1
    print(f"medagentbench: {len(mab['tasks'])} tasks over {len(mab['files'])} patients")
    print(f"chartqa: {len(qa['items'])} items: {dict(sorted(cats.items()))}")


if __name__ == "__main__":
    main()
