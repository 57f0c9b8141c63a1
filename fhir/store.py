"""The record store: everything one read accepted, with quarantine, references and per-patient views.

``load(path)`` reads a source, validates every resource, quarantines the invalid, indexes
references, and assigns resources to patients.  ``RecordSet.patient(id)`` gives a
:class:`PatientRecord` with the patient's clinical facts (built once, cached).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import orjson
from pydantic import BaseModel, Field

from .errors import InputError
from .facts import ClinicalFact, build_fact, concept_text
from .parse import Accepted, Quarantined, validate_all
from .references import Dangling, ReferenceIndex, iter_references, resource_key
from .sources import RawResource, Source, open_source

#: Fields that link a resource to its patient, in order of preference.
PATIENT_FIELDS = ("subject", "patient", "beneficiary", "individual")

ProgressFn = Callable[[int], None]


class PatientSummary(BaseModel):
    id: str
    key: str
    gender: str | None = None
    birth_date: str | None = None
    deceased: str | bool | None = None
    resources: int = 0
    first: str | None = None
    last: str | None = None


class Manifest(BaseModel):
    """What a read holds: the contract of ``chartwise inspect --json``."""

    source: str
    read: int
    accepted: int
    quarantined: int
    duplicates: int = 0
    patients: list[PatientSummary] = Field(default_factory=list)
    resource_counts: dict[str, int] = Field(default_factory=dict)
    date_range: tuple[str | None, str | None] = (None, None)
    quarantine: list[Quarantined] = Field(default_factory=list)
    dangling_references: int = 0
    dangling_examples: list[Dangling] = Field(default_factory=list)


@dataclass
class PatientRecord:
    """One patient's slice of a read: their resources and clinical facts."""

    patient_key: str
    patient: dict
    keys: list[str]
    records: "RecordSet"

    @cached_property
    def facts(self) -> list[ClinicalFact]:
        out = []
        refs = self.records.refs
        for key in self.keys:
            fact = build_fact(key, refs.by_key[key], refs, self.patient_key)
            if fact is not None:
                out.append(fact)
        out.sort(key=_fact_sort_key)
        return out

    @cached_property
    def facts_by_key(self) -> dict[str, ClinicalFact]:
        return {f.key: f for f in self.facts}

    @property
    def id(self) -> str:
        return self.patient_key.split("/", 1)[1]

    def get(self, key: str) -> dict | None:
        """The raw JSON of a cited resource (``Type/id``, span suffix ignored)."""
        return self.records.refs.by_key.get(key.split("#", 1)[0])

    def resources(self) -> Iterable[dict]:
        return (self.records.refs.by_key[k] for k in self.keys)

    def summary(self) -> PatientSummary:
        return self.records.patient_summaries()[self.patient_key]


def _fact_sort_key(fact: ClinicalFact) -> tuple:
    return (fact.when is None, fact.when or 0, fact.key)


@dataclass
class RecordSet:
    """All accepted resources of one read, and what was quarantined."""

    source: str
    refs: ReferenceIndex = field(default_factory=ReferenceIndex)
    origins: dict[str, str] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    read: int = 0
    duplicates: int = 0
    patient_of: dict[str, str | None] = field(default_factory=dict)
    _patients: dict[str, PatientRecord] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.read - len(self.quarantined)

    def add(self, item: Accepted, synthetic_index: int) -> None:
        key = resource_key(item.data)
        if key is None:
            # Resources without an id (allowed in transaction bundles) get a stable local key.
            key = f"{item.resource_type}/{item.full_url.rsplit(':', 1)[-1] if item.full_url else f'_noid{synthetic_index}'}"
            item.data = {**item.data, "id": key.split("/", 1)[1]}
        if key in self.refs.by_key:
            self.duplicates += 1
            if item.full_url and item.full_url not in self.refs.by_full_url:
                self.refs.by_full_url[item.full_url] = key
            return
        self.refs.add(key, item.data, item.full_url)
        self.origins[key] = str(item.origin)

    def finish(self) -> None:
        """Assign resources to patients (after every reference target is known)."""
        for key, data in self.refs.by_key.items():
            if data["resourceType"] == "Patient":
                self.patient_of[key] = key
                continue
            owner = None
            for name in PATIENT_FIELDS:
                ref = data.get(name)
                if isinstance(ref, list):
                    ref = ref[0] if ref else None
                if ref is None:
                    continue
                hit = self.refs.resolve_key(ref, data)
                if hit and hit.startswith("Patient/"):
                    owner = hit
                    break
            self.patient_of[key] = owner

    @cached_property
    def dangling(self) -> list[Dangling]:
        out = []
        refs = self.refs
        for key, data in refs.by_key.items():
            if _all_references_resolve(refs, key, data):
                continue  # the common case, checked on the serialized resource without walking it
            for path, ref in iter_references(data):
                if ref.startswith("#"):
                    if refs.resolve(ref, data, key) is None:
                        out.append(Dangling(source=key, path=path, reference=ref))
                elif refs.resolve(ref) is None:
                    out.append(Dangling(source=key, path=path, reference=ref))
        return out

    def patient_keys(self) -> list[str]:
        return [k for k in self.refs.by_key if k.startswith("Patient/")]

    def patient(self, patient_id: str | None = None) -> PatientRecord:
        """The record of one patient; with no id, the only patient (an error when there are several)."""
        keys = self.patient_keys()
        if patient_id is None:
            if not keys:
                raise InputError(f"{self.source}: no Patient resource in the input")
            if len(keys) > 1:
                shown = ", ".join(k.split('/', 1)[1] for k in keys[:5])
                raise InputError(f"{self.source}: {len(keys)} patients; choose one with --patient ID (e.g. {shown})")
            key = keys[0]
        else:
            key = patient_id if patient_id.startswith("Patient/") else f"Patient/{patient_id}"
            if key not in self.refs.by_key:
                raise InputError(f"{self.source}: no patient with id {key.split('/', 1)[1]!r}; run 'chartwise inspect' to list them")
        if key not in self._patients:
            members = self._members(key)
            self._patients[key] = PatientRecord(key, self.refs.by_key[key], members, self)
        return self._patients[key]

    def _members(self, patient_key: str) -> list[str]:
        return [k for k, owner in self.patient_of.items() if owner == patient_key and k != patient_key]

    def patients(self) -> list[PatientRecord]:
        return [self.patient(k) for k in self.patient_keys()]

    @cached_property
    def _summaries(self) -> dict[str, PatientSummary]:
        counts: Counter[str] = Counter()
        first: dict[str, str] = {}
        last: dict[str, str] = {}
        for key, owner in self.patient_of.items():
            if owner is None or key == owner:
                continue
            counts[owner] += 1
            day = _resource_day(self.refs.by_key[key])
            if day:
                if owner not in first or day < first[owner]:
                    first[owner] = day
                if owner not in last or day > last[owner]:
                    last[owner] = day
        out = {}
        for key in self.patient_keys():
            p = self.refs.by_key[key]
            deceased = p.get("deceasedDateTime") or p.get("deceasedBoolean")
            out[key] = PatientSummary(id=key.split("/", 1)[1], key=key, gender=p.get("gender"),
                                      birth_date=p.get("birthDate"), deceased=deceased, resources=counts[key],
                                      first=first.get(key), last=last.get(key))
        return out

    def patient_summaries(self) -> dict[str, PatientSummary]:
        return self._summaries

    def manifest(self, max_quarantine: int | None = None, max_dangling: int = 20) -> Manifest:
        counts = Counter(k.split("/", 1)[0] for k in self.refs.by_key)
        days = [s for s in (p.first for p in self._summaries.values()) if s] + \
               [s for s in (p.last for p in self._summaries.values()) if s]
        quarantine = self.quarantined if max_quarantine is None else self.quarantined[:max_quarantine]
        return Manifest(
            source=self.source, read=self.read, accepted=self.accepted, quarantined=len(self.quarantined),
            duplicates=self.duplicates, patients=list(self._summaries.values()),
            resource_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            date_range=(min(days) if days else None, max(days) if days else None),
            quarantine=quarantine, dangling_references=len(self.dangling),
            dangling_examples=self.dangling[:max_dangling],
        )


_REFERENCE_VALUE = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')


def _all_references_resolve(refs: ReferenceIndex, key: str, data: dict) -> bool:
    """True when every ``"reference"`` string in the resource (contained ones included) resolves."""
    for raw in _REFERENCE_VALUE.findall(orjson.dumps(data)):
        ref = orjson.loads(b'"' + raw + b'"')
        hit = refs.resolve(ref, data, key) if ref.startswith("#") else refs.resolve(ref)
        if hit is None:
            return False
    return True


_DATE_FIELDS = ("effectiveDateTime", "onsetDateTime", "authoredOn", "occurrenceDateTime", "performedDateTime",
                "date", "recordedDate", "started", "issued")
_PERIOD_FIELDS = ("period", "effectivePeriod", "performedPeriod")


def _resource_day(data: dict) -> str | None:
    for name in _DATE_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and len(value) >= 4:
            return value[:10]
    for name in _PERIOD_FIELDS:
        value = data.get(name)
        if isinstance(value, dict) and isinstance(value.get("start"), str):
            return value["start"][:10]
    return None


def read_records(source: Source, *, strict: bool = False, progress: ProgressFn | None = None) -> RecordSet:
    """Read, validate and index a whole source."""
    records = RecordSet(source=getattr(source, "label", str(source)))

    def counted(raws: Iterable[RawResource]) -> Iterable[RawResource]:
        for raw in raws:
            records.read += 1
            if progress is not None:
                progress(1)
            yield raw

    for index, item in enumerate(validate_all(counted(source), strict=strict, on_quarantine=records.quarantined.append)):
        records.add(item, index)
    records.finish()
    if records.read == 0:
        raise InputError(f"{records.source}: no FHIR resources found")
    return records


def load(path: str | os.PathLike[str] | Source, *, strict: bool = False, progress: ProgressFn | None = None) -> RecordSet:
    """Read a bundle file, a folder of bundles or NDJSON, or a single resource file."""
    source = path if isinstance(path, Source) and not isinstance(path, (str, os.PathLike)) else open_source(path)
    return read_records(source, strict=strict, progress=progress)


def patient_display_name(patient: dict) -> str | None:
    """The patient's name, for output the user asked for (never for logs)."""
    for name in patient.get("name") or ():
        if isinstance(name, dict):
            if name.get("text"):
                return name["text"]
            given = " ".join(name.get("given") or [])
            return f"{given} {name.get('family', '')}".strip() or None
    return concept_text(None)
