"""MedAgentBench-compatible runner: tasks in MedAgentBench's JSON format, graded with its published rules.

A task is ``{"id": "task4_1", "instruction": ..., "context": ..., "eval_MRN": ..., "sol": [...]}``;
the task type is the ``id`` prefix. The reference answer is computed the way MedAgentBench's
``refsol.py`` computes it: from the FHIR data itself (raw JSON, not Chartwise's facts), with the
reference time read from the task's ``context`` ("It's 2023-11-13T10:15:00+00:00 now") and the
observation code from it ("The code for magnesium is \"MG\""), falling back to MedAgentBench's
defaults (2023-11-13T10:15:00+00:00; MG, GLU, K, A1C).

Graded (read-only query types, MedAgentBench's rules):

* task1 patient search by name + DOB -> ``[MRN]`` (or ``["Patient not found"]``), exact match with ``sol``;
* task2 age at the reference date, rounded down -> ``[age]``, exact;
* task4 most recent value within 24 h before now -> ``[value]``, ``[-1]`` when none, exact;
* task6 mean of the values within 24 h -> ``[mean]``, ``[-1]`` when none, within 0.1;
* task7 most recent value (no window) -> ``[value]``, exact;
* task5 / task9 / task10: only their query part (``[last value]`` or ``[]``; task10 ``[value, time]``);
  the orders they may require are not graded.

Not graded: task3 and task8 (they only POST an observation or a referral). Chartwise is a
read-only tool and never writes to the record.

Matching is MedAgentBench's: a task is patient-scoped by ``eval_MRN``, which matches the Patient's
id or any of its identifier values (so Synthea patient ids serve as MRNs).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from .eval_graders import normalize_text, utc

DEFAULT_NOW = "2023-11-13T10:15:00+00:00"
DEFAULT_CODES = {"task4": "MG", "task5": "MG", "task6": "GLU", "task7": "GLU", "task9": "K", "task10": "A1C"}
GRADED = ("task1", "task2", "task4", "task5", "task6", "task7", "task9", "task10")
QUERY_PART_ONLY = ("task5", "task9", "task10")
OUT_OF_SCOPE = {"task3": "records a vital sign (POST Observation); Chartwise is read-only",
                "task8": "orders a referral (POST ServiceRequest); Chartwise is read-only"}

_NOW = re.compile(r"It'?s\s+(\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)\s+now", re.I)
_CODE = re.compile(r"code for [^\"“]*? is\s+[\"“]([^\"”]+)[\"”]", re.I)
_NAME_DOB = re.compile(r"name\s+(.+?)\s+and\s+DOB\s+of\s+(\d{4}-\d{2}-\d{2})", re.I)
_FINISH = re.compile(r"FINISH\((\[.*?\])\)", re.S)


def task_type(task_id: str) -> str:
    return str(task_id).split("_", 1)[0]


def context_now(task: dict[str, Any]) -> datetime:
    m = _NOW.search(f"{task.get('context') or ''} {task.get('instruction') or ''}")
    return utc(datetime.fromisoformat((m.group(1) if m else DEFAULT_NOW).replace("Z", "+00:00")))


def context_code(task: dict[str, Any]) -> str | None:
    m = _CODE.search(f"{task.get('context') or ''} {task.get('instruction') or ''}")
    return m.group(1).strip() if m else DEFAULT_CODES.get(task_type(task["id"]))


def load_tasks(path: str | Path) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text("utf-8"))
    tasks = data["tasks"] if isinstance(data, dict) else data
    for t in tasks:
        missing = [k for k in ("id", "instruction") if k not in t]
        if missing:
            from chartwise.fhir.errors import InputError
            raise InputError(f"{path}: task {t.get('id', '?')} lacks {', '.join(missing)} (MedAgentBench format)")
    return tasks


# ---------------------------------------------------------------------------- raw FHIR views
def _patients(resources: Any) -> list[dict]:
    return [r for r in resources if r.get("resourceType") == "Patient"]


def patient_for_mrn(resources: list[dict], mrn: str) -> dict | None:
    for p in _patients(resources):
        if p.get("id") == mrn or any(isinstance(i, dict) and i.get("value") == mrn for i in p.get("identifier") or ()):
            return p
    return None


def _subject_id(r: dict) -> str | None:
    ref = (r.get("subject") or r.get("patient") or {}).get("reference") or ""
    return ref.rsplit("/", 1)[-1].replace("urn:uuid:", "") if ref else None


def _has_code(r: dict, code: str) -> bool:
    concept = r.get("code") or {}
    if concept.get("text") == code:
        return True
    return any(isinstance(c, dict) and c.get("code") == code for c in concept.get("coding") or ())


def raw_observations(resources: list[dict], patient: dict, code: str) -> list[tuple[datetime, float, str]]:
    """``(effective UTC, value, effectiveDateTime as written)`` of the patient's observations with ``code``."""
    out = []
    for r in resources:
        if r.get("resourceType") != "Observation" or _subject_id(r) != patient.get("id") or not _has_code(r, code):
            continue
        when, value = r.get("effectiveDateTime"), (r.get("valueQuantity") or {}).get("value")
        if not isinstance(when, str) or not isinstance(value, (int, float)):
            continue
        out.append((utc(datetime.fromisoformat(when.replace("Z", "+00:00"))), value, when))
    return out


def _age(dob: str, now: datetime) -> int:
    d = datetime.strptime(dob[:10], "%Y-%m-%d")
    age = now.year - d.year
    if (now.month, now.day) < (d.month, d.day):
        age -= 1
    return age


def reference_solution(task: dict[str, Any], resources: list[dict]) -> list[Any] | None:
    """MedAgentBench's reference answer for ``task`` over ``resources`` (raw FHIR JSON); None if not graded."""
    kind = task_type(task["id"])
    if kind not in GRADED:
        return None
    if kind == "task1":
        return list(task.get("sol") or [])
    patient = patient_for_mrn(resources, str(task.get("eval_MRN")))
    now = context_now(task)
    if kind == "task2":
        return [_age(patient["birthDate"], now)] if patient and patient.get("birthDate") else None
    obs = raw_observations(resources, patient, context_code(task) or "") if patient else []
    window = [o for o in obs if o[0] >= now - timedelta(hours=24)]
    if kind in ("task4", "task5"):
        last = max(window, key=lambda o: o[0], default=None)
        return [last[1] if last else -1]
    if kind == "task6":
        return [sum(o[1] for o in window) / len(window) if window else -1]
    last = max(obs, key=lambda o: o[0], default=None)
    if kind in ("task7", "task9"):
        return [last[1] if last else -1]
    if kind == "task10":
        return [last[1], last[2]] if last else [-1]
    return None


def grade(task: dict[str, Any], result: str | None, ref: list[Any] | None) -> bool | None:
    """MedAgentBench's comparison of the agent's ``FINISH([...])`` payload (a JSON list string) with ``ref``."""
    kind = task_type(task["id"])
    if ref is None or kind not in GRADED:
        return None
    try:
        got = json.loads(result or "")
    except (TypeError, ValueError):
        return False
    if kind == "task6":
        return isinstance(got, list) and len(got) == 1 and isinstance(got[0], (int, float)) \
            and not isinstance(got[0], bool) and abs(got[0] - ref[0]) < 0.1
    if kind in QUERY_PART_ONLY and got == []:
        return True  # MedAgentBench accepts [] for the check-and-order types
    return got == ref


def finish_payload(answer: str) -> str | None:
    """The ``[...]`` of the last ``FINISH([...])`` in a model's answer, or None."""
    found = _FINISH.findall(answer or "")
    return found[-1] if found else None


# ---------------------------------------------------------------------------- Chartwise's answer (no model)
def _fact_code_match(fact: Any, code: str) -> bool:
    return any(c.code == code for c in fact.codes) or fact.label == code


def solve_with_facts(task: dict[str, Any], records: Any) -> tuple[str | None, list[str]]:
    """Chartwise's deterministic answer from its clinical facts (``--backend none``): the JSON list
    payload and the citation keys it rests on. None when the task type needs a model or a write."""
    from chartwise.fhir.store import patient_display_name

    kind = task_type(task["id"])
    now = context_now(task).replace(tzinfo=None)
    if kind == "task1":
        m = _NAME_DOB.search(task.get("instruction") or "")
        if not m:
            return None, []
        name, dob = normalize_text(m.group(1)), m.group(2)
        for key in records.patient_keys():
            p = records.refs.by_key[key]
            if p.get("birthDate") == dob and normalize_text(patient_display_name(p) or "") == name:
                mrn = next((i.get("value") for i in p.get("identifier") or () if isinstance(i, dict)
                            and any(c.get("code") == "MR" for c in (i.get("type") or {}).get("coding") or ())), None)
                return json.dumps([task.get("eval_MRN") if task.get("eval_MRN") in (p.get("id"), mrn) else p.get("id")]), [key]
        return json.dumps(["Patient not found"]), []
    record = find_patient(records, str(task.get("eval_MRN")))
    if record is None:
        return None, []
    if kind == "task2":
        dob = record.patient.get("birthDate")
        return (json.dumps([_age(dob, now)]) if dob else None), [record.patient_key]
    if kind not in DEFAULT_CODES:
        return None, []
    code = context_code(task) or ""
    facts = [f for f in record.facts if f.when is not None and isinstance(f.value, (int, float))
             and not isinstance(f.value, bool) and _fact_code_match(f, code)]
    in_window = [f for f in facts if f.when >= now - timedelta(hours=24)]
    if kind in ("task4", "task5"):
        last = max(in_window, key=lambda f: f.when, default=None)
        return json.dumps([last.value if last else -1]), [last.key] if last else []
    if kind == "task6":
        if not in_window:
            return json.dumps([-1]), []
        return json.dumps([sum(f.value for f in in_window) / len(in_window)]), [f.key for f in in_window]
    last = max(facts, key=lambda f: f.when, default=None)
    if kind in ("task7", "task9"):
        return json.dumps([last.value if last else -1]), [last.key] if last else []
    if kind == "task10":
        return json.dumps([last.value, last.effective] if last else [-1]), [last.key] if last else []
    return None, []


def find_patient(records: Any, mrn: str) -> Any:
    for key in records.patient_keys():
        p = records.refs.by_key[key]
        if p.get("id") == mrn or any(isinstance(i, dict) and i.get("value") == mrn for i in p.get("identifier") or ()):
            return records.patient(key)
    return None


def model_question(task: dict[str, Any]) -> str:
    return (f"{task['instruction']}\n{task.get('context') or ''}\n"
            "Finish with one line FINISH([...]) holding the answer as a JSON list, as MedAgentBench expects "
            "(for example FINISH([4.2]) or FINISH([-1]) or FINISH([\"Patient not found\"])).").strip()


@dataclass
class TaskResult:
    id: str
    type: str
    graded: bool
    correct: bool | None
    answer: str | None
    reference: list[Any] | None
    sol: list[Any] | None
    sol_agrees: bool | None
    citations: list[str] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0


def run_tasks(tasks: list[dict[str, Any]], records: Any, *, answer: Callable[[dict[str, Any], Any], tuple[str | None, list[str]]] | None = None) -> list[TaskResult]:
    """Run and grade every task. ``answer(task, records) -> (payload, citations)``; default: the facts solver."""
    import time

    answer = answer or solve_with_facts
    resources = list(records.refs.by_key.values())
    out = []
    for t in tasks:
        kind = task_type(t["id"])
        t0 = time.perf_counter()
        if kind in OUT_OF_SCOPE or kind not in GRADED:
            out.append(TaskResult(t["id"], kind, False, None, None, None, t.get("sol"), None,
                                  note=OUT_OF_SCOPE.get(kind, "task type not graded")))
            continue
        ref = reference_solution(t, resources)
        sol = t.get("sol")
        agrees = None if sol is None or ref is None else grade(t, json.dumps(sol), ref)
        payload, cites = answer(t, records)
        ok = grade(t, payload, ref) if payload is not None else None
        note = "query part only; orders not graded" if kind in QUERY_PART_ONLY else ""
        if payload is None:
            note = (note + "; " if note else "") + "no answer"
        out.append(TaskResult(t["id"], kind, payload is not None, ok, payload, ref, sol, agrees, cites, note,
                              round(time.perf_counter() - t0, 4)))
    return out


def summarize(results: list[TaskResult]) -> dict[str, Any]:
    graded = [r for r in results if r.graded]
    by_type: dict[str, dict[str, Any]] = {}
    for r in results:
        d = by_type.setdefault(r.type, {"tasks": 0, "graded": 0, "correct": 0})
        d["tasks"] += 1
        d["graded"] += int(r.graded)
        d["correct"] += int(bool(r.correct))
    for d in by_type.values():
        d["accuracy"] = d["correct"] / d["graded"] if d["graded"] else None
    sol_checked = [r for r in results if r.sol_agrees is not None]
    return {
        "tasks": len(results), "graded": len(graded),
        "accuracy": sum(1 for r in graded if r.correct) / len(graded) if graded else None,
        "sol_agreement": sum(1 for r in sol_checked if r.sol_agrees) / len(sol_checked) if sol_checked else None,
        "by_type": dict(sorted(by_type.items(), key=lambda kv: int(kv[0][4:]) if kv[0][4:].isdigit() else 99)),
        "not_graded": sorted({f"{r.type}: {r.note}" for r in results if not r.graded and r.type in OUT_OF_SCOPE}),
    }
