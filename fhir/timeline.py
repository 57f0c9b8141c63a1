"""The deterministic, cited patient timeline (no model involved).

:func:`build_timeline` turns a :class:`~chartwise.fhir.store.PatientRecord` into a
:class:`Timeline`: a problem list, medication courses, lab and vital series per code, procedures,
immunizations, allergies, imaging, notes, and the encounters in order with what happened at each.
Every line carries the citation keys it rests on.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field

from .facts import Category, ClinicalFact, range_text
from .store import PatientRecord

#: A change smaller than this fraction of the previous value counts as stable.
TREND_TOLERANCE = 0.05


class Point(BaseModel):
    date: str | None
    value: float
    key: str
    abnormal: bool | None = None


class Series(BaseModel):
    """All numeric results of one code (a lab or vital, or one component such as systolic BP)."""

    label: str
    code: str | None
    system: str | None = None
    category: Category
    unit: str | None = None
    count: int
    latest: Point
    previous: Point | None = None
    min: Point
    max: Point
    trend: str  # "up", "down", "stable", "single"
    out_of_range: int = 0
    reference: str | None = None  # "70-99 mg/dL (default adult range)"
    points: list[Point] = Field(default_factory=list)

    @property
    def citations(self) -> list[str]:
        return [p.key for p in self.points]


class Problem(BaseModel):
    label: str
    code: str | None
    status: str  # active / resolved / other clinical status
    onset: str | None
    abatement: str | None
    episodes: int
    citations: list[str]


class MedicationCourse(BaseModel):
    label: str
    code: str | None
    start: str | None
    last_order: str | None
    stop: str | None
    status: str | None
    orders: int
    dosage: str | None = None
    citations: list[str]


class Entry(BaseModel):
    """A dated line of the timeline."""

    date: str | None
    category: Category
    text: str
    citations: list[str]


class EncounterGroup(BaseModel):
    date: str | None
    encounter: str | None  # the encounter's citation key, None for facts without one
    title: str
    entries: list[Entry] = Field(default_factory=list)


class PatientHeader(BaseModel):
    id: str
    key: str
    gender: str | None = None
    birth_date: str | None = None
    deceased: str | bool | None = None
    age: int | None = None


class Timeline(BaseModel):
    """The ``chartwise timeline --format json`` contract."""

    patient: PatientHeader
    date_range: tuple[str | None, str | None]
    problems: list[Problem] = Field(default_factory=list)
    medications: list[MedicationCourse] = Field(default_factory=list)
    labs: list[Series] = Field(default_factory=list)
    vitals: list[Series] = Field(default_factory=list)
    allergies: list[Entry] = Field(default_factory=list)
    immunizations: list[Entry] = Field(default_factory=list)
    procedures: list[Entry] = Field(default_factory=list)
    imaging: list[Entry] = Field(default_factory=list)
    notes: list[Entry] = Field(default_factory=list)
    encounters: list[EncounterGroup] = Field(default_factory=list)

    def citations(self) -> set[str]:
        keys: set[str] = set()
        for p in self.problems:
            keys.update(p.citations)
        for m in self.medications:
            keys.update(m.citations)
        for s in self.labs + self.vitals:
            keys.update(s.citations)
        for e in self.allergies + self.immunizations + self.procedures + self.imaging + self.notes:
            keys.update(e.citations)
        for g in self.encounters:
            if g.encounter:
                keys.add(g.encounter)
            for e in g.entries:
                keys.update(e.citations)
        return {k.split("#", 1)[0] for k in keys}


def _concept_id(fact: ClinicalFact) -> tuple[str, str | None, str | None]:
    for c in fact.codes:
        if c.code:
            return (f"{c.system}|{c.code}", c.code, c.system)
    return (f"text|{fact.label.lower()}", None, None)


def _point(fact: ClinicalFact, value: float, abnormal: bool | None) -> Point:
    return Point(date=fact.day, value=value, key=fact.key, abnormal=abnormal)


def trend_of(points: list[Point]) -> str:
    """Direction of the latest value against the previous one (within 5% is stable)."""
    if len(points) < 2:
        return "single"
    prev, last = points[-2].value, points[-1].value
    scale = max(abs(prev), 1e-9)
    if abs(last - prev) / scale <= TREND_TOLERANCE:
        return "stable"
    return "up" if last > prev else "down"


def _series(facts: list[ClinicalFact]) -> list[Series]:
    groups: dict[str, list[tuple[ClinicalFact, str, str | None, str | None, float, bool | None, str | None]]] = defaultdict(list)
    for f in facts:
        if isinstance(f.value, float) and not isinstance(f.value, bool):
            cid, code, system = _concept_id(f)
            groups[cid].append((f, f.label, code, system, f.value, f.abnormal, f.unit))
        for comp in f.components:
            if isinstance(comp.value, float):
                code = next((c.code for c in comp.codes if c.code), None)
                system = next((c.system for c in comp.codes if c.code), None)
                cid = f"{system}|{code}" if code else f"text|{comp.label.lower()}"
                groups[cid].append((f, comp.label, code, system, comp.value, comp.abnormal, comp.unit))
    out = []
    for rows in groups.values():
        rows.sort(key=lambda r: (r[0].when or datetime.min, r[0].key))
        points = [_point(r[0], r[4], r[5]) for r in rows]
        first = rows[-1]
        fact = first[0]
        ref = None
        rr = fact.reference_range
        if rr is not None and not fact.components and range_text(rr):
            ref = range_text(rr) + (" (default adult range)" if rr.source == "default" else "")
        out.append(Series(
            label=first[1], code=first[2], system=first[3], category=fact.category, unit=first[6],
            count=len(points), latest=points[-1], previous=points[-2] if len(points) > 1 else None,
            min=min(points, key=lambda p: p.value), max=max(points, key=lambda p: p.value),
            trend=trend_of(points), out_of_range=sum(1 for p in points if p.abnormal), reference=ref, points=points,
        ))
    out.sort(key=lambda s: s.label.lower())
    return out


def _problems(facts: list[ClinicalFact]) -> list[Problem]:
    groups: dict[str, list[ClinicalFact]] = defaultdict(list)
    for f in facts:
        groups[_concept_id(f)[0]].append(f)
    out = []
    for cid, rows in groups.items():
        rows.sort(key=lambda f: (f.when or datetime.min, f.key))
        latest = rows[-1]
        statuses = {r.status for r in rows}
        status = "active" if "active" in statuses or "recurrence" in statuses or "relapse" in statuses else (latest.status or "unknown")
        out.append(Problem(label=latest.label, code=_concept_id(latest)[1], status=status, onset=rows[0].day,
                           abatement=latest.end_day if status != "active" else None, episodes=len(rows),
                           citations=[r.key for r in rows]))
    out.sort(key=lambda p: (p.status != "active", p.onset or "", p.label))
    return out


_STOPPED = {"stopped", "completed", "cancelled", "entered-in-error", "not-taken", "ended"}


def _medications(facts: list[ClinicalFact]) -> list[MedicationCourse]:
    groups: dict[str, list[ClinicalFact]] = defaultdict(list)
    for f in facts:
        groups[_concept_id(f)[0]].append(f)
    out = []
    for rows in groups.values():
        rows.sort(key=lambda f: (f.when or datetime.min, f.key))
        last = rows[-1]
        stop = None
        if last.status in _STOPPED:
            ends = [r.end_day for r in rows if r.end_day]
            stop = max(ends) if ends else last.day
        out.append(MedicationCourse(label=last.label, code=_concept_id(last)[1], start=rows[0].day,
                                    last_order=last.day, stop=stop, status=last.status, orders=len(rows),
                                    dosage=last.details.get("dosage"), citations=[r.key for r in rows]))
    out.sort(key=lambda m: (m.stop is not None, m.start or "", m.label))
    return out


def _entry(fact: ClinicalFact) -> Entry:
    text = fact.line.split(" ", 2)[-1] if fact.line else fact.label  # drop the date and category words
    return Entry(date=fact.day, category=fact.category, text=text, citations=[fact.key])


def _age(birth: str | None, on: str | None) -> int | None:
    if not birth or not on or len(birth) < 10:
        return None
    b = datetime.fromisoformat(birth[:10])
    d = datetime.fromisoformat(on[:10])
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def build_timeline(record: PatientRecord) -> Timeline:
    """The cited timeline of one patient."""
    facts = record.facts
    by_cat: dict[Category, list[ClinicalFact]] = defaultdict(list)
    for f in facts:
        by_cat[f.category].append(f)
    days = [f.day for f in facts if f.day]
    p = record.patient
    deceased = p.get("deceasedDateTime") or p.get("deceasedBoolean")
    last_day = (deceased if isinstance(deceased, str) else None) or (max(days) if days else None)
    header = PatientHeader(id=record.id, key=record.patient_key, gender=p.get("gender"), birth_date=p.get("birthDate"),
                           deceased=deceased, age=_age(p.get("birthDate"), last_day))
    numeric_obs = [f for f in facts if f.resource_type == "Observation"]
    timeline = Timeline(
        patient=header,
        date_range=(min(days) if days else None, max(days) if days else None),
        problems=_problems(by_cat[Category.condition]),
        medications=_medications(by_cat[Category.medication]),
        labs=_series([f for f in numeric_obs if f.category == Category.lab]),
        vitals=_series([f for f in numeric_obs if f.category == Category.vital]),
        allergies=[_entry(f) for f in by_cat[Category.allergy]],
        immunizations=[_entry(f) for f in by_cat[Category.immunization]],
        procedures=[_entry(f) for f in by_cat[Category.procedure]],
        imaging=[_entry(f) for f in by_cat[Category.imaging]],
        notes=[_entry(f) for f in by_cat[Category.note]],
        encounters=_encounters(record, facts),
    )
    return timeline


def _encounters(record: PatientRecord, facts: list[ClinicalFact]) -> list[EncounterGroup]:
    """Facts grouped by encounter (in encounter order); facts with no encounter grouped by date."""
    groups: dict[tuple[str, str | None], EncounterGroup] = {}
    enc_facts = {f.key: f for f in facts if f.category == Category.encounter}
    for key, enc in enc_facts.items():
        title = enc.label + (f" ({enc.details['class']})" if enc.details.get("class") else "")
        if enc.details.get("reason"):
            title += f", reason: {enc.details['reason']}"
        groups[(enc.day or "", key)] = EncounterGroup(date=enc.day, encounter=key, title=title)
    for f in facts:
        if f.category == Category.encounter:
            continue
        if f.encounter and f.encounter in enc_facts:
            enc = enc_facts[f.encounter]
            group = groups[(enc.day or "", enc.key)]
        else:
            gkey = (f.day or "", None)
            group = groups.get(gkey)
            if group is None:
                group = groups[gkey] = EncounterGroup(date=f.day, encounter=None, title="no encounter")
        group.entries.append(_entry(f))
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] == "", kv[0][0], kv[0][1] or ""))
    return [g for _, g in ordered]
