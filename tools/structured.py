"""Typed, read-only query tools over one patient's record.

Each tool takes a pydantic argument model and the :class:`~chartwise.fhir.store.PatientRecord`
and returns a :class:`ToolResult` of :class:`EvidenceItem` (citation key, text, date, tokens).
The docstring of each tool is its description and the argument model its JSON schema
(:func:`tool_specs`), so the agent can offer them to a model as they are.
"""
from __future__ import annotations

import inspect
from datetime import date
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from chartwise.fhir.errors import InputError
from chartwise.fhir.facts import Category, ClinicalFact, format_number
from chartwise.fhir.store import PatientRecord

from .index import Concept, patient_index
from .literature import literature_index
from .question import as_date
from .tokens import Tokenizer, item_tokens


class EvidenceItem(BaseModel):
    """One cited piece of evidence, rendered for a prompt."""

    citation: str = Field(description="citation key: Type/id, DocumentReference/id#start-end, or PMID:n")
    text: str
    date: str | None = Field(default=None, description="YYYY-MM-DD of the fact, note or paper year")
    tokens: int = 0

    @property
    def key(self) -> str:
        return self.citation


class ToolResult(BaseModel):
    items: list[EvidenceItem] = Field(default_factory=list)
    note: str | None = Field(default=None, description="what was matched, or why nothing was")

    @property
    def tokens(self) -> int:
        return sum(i.tokens for i in self.items)


# ------------------------------------------------------------------------------------------ rendering
def fact_text(fact: ClinicalFact, compact: bool = False) -> str:
    """The fact's one-line rendering; ``compact``: date, label, value and flag only."""
    if not compact:
        text = fact.line
        if fact.reference_range is not None and fact.reference_range.source == "default" and "(ref" in text:
            text = text.replace("(ref ", "(default adult ref ", 1)
        return text
    parts = [fact.day or "undated", fact.label[:60]]
    if fact.components:
        parts.append("; ".join(f"{c.label[:30]} {format_number(c.value) if isinstance(c.value, float) else c.value}"
                               f"{' ' + c.unit if c.unit else ''}" for c in fact.components if c.value is not None))
    if fact.value is not None:
        v = format_number(fact.value) if isinstance(fact.value, float) else str(fact.value)
        parts.append(f"= {v}{' ' + fact.unit if fact.unit else ''}")
    if fact.abnormal:
        parts.append("ABNORMAL")
    if fact.status and fact.category in (Category.medication, Category.condition, Category.allergy):
        parts.append(f"[{fact.status}]")
    return " ".join(parts)


def fact_item(fact: ClinicalFact, tokenizer: Tokenizer | None = None, compact: bool = False) -> EvidenceItem:
    text = fact_text(fact, compact)
    return EvidenceItem(citation=fact.key, text=text, date=fact.day, tokens=item_tokens(fact.key, text, tokenizer))


def text_item(citation: str, text: str, day: str | None, tokenizer: Tokenizer | None = None) -> EvidenceItem:
    return EvidenceItem(citation=citation, text=text, date=day, tokens=item_tokens(citation, text, tokenizer))


def _day(value: date | str | None) -> str | None:
    d = as_date(value) if value is not None else None
    return d.isoformat() if d else None


def _in_range(fact: ClinicalFact, date_from: str | None, date_to: str | None) -> bool:
    d = fact.day
    if date_from and (d is None or d < date_from):
        return False
    if date_to and (d is None or d > date_to):
        return False
    return True


def resolve_concepts(patient: PatientRecord, concept: str, categories: list[str] | None = None, k: int = 3) -> list[Concept]:
    """The record concepts a clinician's words name: every vocabulary match, else the top hybrid hits."""
    hits = patient_index(patient).search_concepts(concept, k=12, categories=categories)
    if not hits:
        return []
    grouped = [h for h in hits if h.group_match]
    if grouped:
        best = max(len(h.group_match or "") for h in grouped)
        return [h.concept for h in grouped if len(h.group_match or "") == best][:8]
    return [h.concept for h in hits[:k]]


# ------------------------------------------------------------------------------------------ arguments
CategoryName = Literal["condition", "lab", "vital", "medication", "procedure", "immunization", "allergy", "encounter",
                       "imaging", "note", "report", "other"]


class ManifestArgs(BaseModel):
    pass


class ManifestResult(BaseModel):
    patient: str
    gender: str | None = None
    birth_date: str | None = None
    first: str | None = None
    last: str | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="facts per category")
    resource_counts: dict[str, int] = Field(default_factory=dict)
    concepts: list[str] = Field(default_factory=list, description="the most frequent concepts (labs, vitals, conditions, drugs)")
    notes: int = 0


class SearchFactsArgs(BaseModel):
    type: str | None = Field(default=None, description="FHIR resource type (Observation, Condition, MedicationRequest...) or a category (lab, vital, medication, condition, procedure, immunization, allergy, encounter)")
    concept: str | None = Field(default=None, description="what to look for in clinician words, e.g. 'A1c', 'BUN', 'Lipitor', 'flu shot'")
    date_from: str | None = Field(default=None, description="first day, YYYY-MM-DD (inclusive)")
    date_to: str | None = Field(default=None, description="last day, YYYY-MM-DD (inclusive)")
    status: str | None = Field(default=None, description="resource status, e.g. active, final, completed, resolved")
    abnormal: bool | None = Field(default=None, description="only abnormal (true) or normal (false) results")
    limit: int = Field(default=20, ge=1, le=500)


class ConceptArgs(BaseModel):
    concept: str = Field(description="a lab, vital, drug or condition in clinician words, e.g. 'potassium', 'BP', 'HbA1c'")


class SeriesArgs(BaseModel):
    concept: str = Field(description="a lab or vital in clinician words")
    date_from: str | None = Field(default=None, description="first day, YYYY-MM-DD")
    date_to: str | None = Field(default=None, description="last day, YYYY-MM-DD")
    limit: int = Field(default=50, ge=1, le=1000)


class AsOfArgs(BaseModel):
    as_of: str | None = Field(default=None, description="the day to evaluate, YYYY-MM-DD (default: the record's last date)")


class GetResourceArgs(BaseModel):
    key: str = Field(description="citation key Type/id (a #start-end span suffix returns that span of a note)")


class SearchNotesArgs(BaseModel):
    query: str = Field(description="what to find in the clinical notes, free text")
    date_from: str | None = None
    date_to: str | None = None
    limit: int = Field(default=5, ge=1, le=50)


class SearchLiteratureArgs(BaseModel):
    query: str = Field(description="a clinical question or topic")
    limit: int = Field(default=5, ge=1, le=20)


# ------------------------------------------------------------------------------------------ tools
def manifest(patient: PatientRecord) -> ManifestResult:
    """What the record holds: demographics, date range, counts per category and resource type, main concepts."""
    idx = patient_index(patient)
    counts: dict[str, int] = {}
    rcounts: dict[str, int] = {}
    for f in patient.facts:
        counts[f.category.value] = counts.get(f.category.value, 0) + 1
        rcounts[f.resource_type] = rcounts.get(f.resource_type, 0) + 1
    top = sorted(idx.concepts, key=lambda c: (-len(c.facts), c.label))[:40]
    days = [f.day for f in patient.facts if f.day]
    return ManifestResult(patient=patient.patient_key, gender=patient.patient.get("gender"),
                          birth_date=patient.patient.get("birthDate"), first=min(days) if days else None,
                          last=max(days) if days else None, counts=counts, resource_counts=rcounts,
                          concepts=[f"{c.label} ({c.category}, {len(c.facts)})" for c in top], notes=len(idx.notes))


def search_facts(args: SearchFactsArgs, patient: PatientRecord) -> ToolResult:
    """Facts filtered by resource type or category, concept, date range, status and abnormality; newest first."""
    cats = [c.value for c in Category]
    type_cat = args.type if args.type in cats else None
    rtype = args.type if args.type and not type_cat else None
    if args.concept:
        concepts = resolve_concepts(patient, args.concept, [type_cat] if type_cat else None)
        facts = [f for c in concepts for f in c.facts]
    else:
        concepts, facts = [], list(patient.facts)
    out = [f for f in facts if (type_cat is None or f.category.value == type_cat)
           and (rtype is None or f.resource_type.lower() == rtype.lower())
           and (args.status is None or (f.status or "").lower() == args.status.lower())
           and (args.abnormal is None or bool(f.abnormal) == args.abnormal)
           and _in_range(f, _day(args.date_from), _day(args.date_to))]
    out.sort(key=lambda f: (f.day or "", f.key), reverse=True)
    note = f"matched concepts: {', '.join(c.label for c in concepts)}" if concepts else None
    return ToolResult(items=[fact_item(f, compact=len(out) > 10) for f in out[: args.limit]],
                      note=note if out else (note or "") + " no facts matched".strip())


def latest(args: ConceptArgs, patient: PatientRecord) -> ToolResult:
    """The most recent fact of the concept (each matching code), with the value before it for trend."""
    items = []
    for i, c in enumerate(resolve_concepts(patient, args.concept)):
        dated = [f for f in c.facts if f.day]
        if not dated:
            continue
        items.append(fact_item(dated[-1]))
        if i == 0 and len(dated) > 1:
            items.append(fact_item(dated[-2], compact=True))
    return ToolResult(items=items, note=None if items else f"no {args.concept!r} in the record")


def series(args: SeriesArgs, patient: PatientRecord) -> ToolResult:
    """Every value of the concept in date order (optionally within a date range)."""
    concepts = resolve_concepts(patient, args.concept, k=1)
    facts = sorted((f for c in concepts for f in c.facts if _in_range(f, _day(args.date_from), _day(args.date_to))),
                   key=lambda f: (f.day or "", f.key))
    return ToolResult(items=[fact_item(f, compact=True) for f in facts[-args.limit:]],
                      note=f"{len(facts)} values of {', '.join(c.label for c in concepts)}" if facts else f"no {args.concept!r} values")


def _active(facts: list[ClinicalFact], as_of: str, statuses: set[str]) -> list[ClinicalFact]:
    out = []
    for f in facts:
        if f.day and f.day > as_of:
            continue
        if f.end_day and f.end_day < as_of:
            continue
        if f.status and f.status.lower() not in statuses:
            continue
        out.append(f)
    return out


def active_medications(args: AsOfArgs, patient: PatientRecord) -> ToolResult:
    """Medications active on a day (default: the record's last date): the latest order per drug still active."""
    as_of = _day(args.as_of) or patient_index(patient).last_day or date.today().isoformat()
    meds = [f for f in patient.facts if f.category == Category.medication and f.resource_type in ("MedicationRequest", "MedicationStatement")]
    active = _active(meds, as_of, {"active", "intended", "on-hold", "draft", "unknown"})
    latest_by: dict[str, ClinicalFact] = {}
    for f in active:
        latest_by[f.label.lower()] = f
    return ToolResult(items=[fact_item(f) for f in sorted(latest_by.values(), key=lambda f: f.label)],
                      note=f"active on {as_of}")


def problem_list(args: AsOfArgs, patient: PatientRecord) -> ToolResult:
    """Conditions active on a day (default: the record's last date), earliest onset per condition."""
    as_of = _day(args.as_of) or patient_index(patient).last_day or date.today().isoformat()
    conds = [f for f in patient.facts if f.category == Category.condition]
    active = _active(conds, as_of, {"active", "recurrence", "relapse", "unknown"})
    first_by: dict[str, ClinicalFact] = {}
    for f in active:
        first_by.setdefault(f.label.lower(), f)
    return ToolResult(items=[fact_item(f) for f in first_by.values()], note=f"active on {as_of}")


def get_resource(args: GetResourceArgs, patient: PatientRecord) -> ToolResult:
    """One resource by citation key: its rendering (for a note span, the span's text)."""
    base, _, span = args.key.partition("#")
    fact = patient.facts_by_key.get(base)
    if fact is None:
        if patient.get(base) is None:
            raise InputError(f"no resource {base!r} in this patient's record")
        return ToolResult(items=[text_item(base, f"{base} (not a clinical fact)", None)])
    if span and fact.text:
        try:
            a, b = (int(x) for x in span.split("-", 1))
        except ValueError as err:
            raise InputError(f"{args.key!r}: a span is #start-end") from err
        return ToolResult(items=[text_item(args.key, f"{fact.day or ''} {fact.label}: {fact.text[a:b]}".strip(), fact.day)])
    text = fact_text(fact)
    if fact.text:
        text = f"{text}\n{fact.text[:4000]}"
    return ToolResult(items=[text_item(fact.key, text, fact.day)])


def search_notes(args: SearchNotesArgs, patient: PatientRecord) -> ToolResult:
    """Passages of the clinical notes that match the query (hybrid search), cited as note spans."""
    hits = patient_index(patient).search_chunks(args.query, k=args.limit, date_from=_day(args.date_from),
                                                date_to=_day(args.date_to))
    items = [text_item(h.chunk.citation, f"{h.chunk.note.day or ''} {h.chunk.note.label}: {' '.join(h.chunk.text.split())}".strip(),
                       h.chunk.note.day) for h in hits]
    return ToolResult(items=items, note=None if items else "no notes matched")


def search_literature(args: SearchLiteratureArgs, corpus: str | None = None) -> ToolResult:
    """Abstracts from the literature corpus relevant to the query, cited PMID:n."""
    index = literature_index(corpus)
    items = []
    for paper, _ in index.search(args.query, k=args.limit):
        text = f"{paper.title} ({paper.year or 'n.d.'}) {paper.abstract[:900]}"
        items.append(text_item(paper.citation, text, paper.year))
    return ToolResult(items=items)


TOOLS: dict[str, Callable[..., Any]] = {
    "manifest": manifest, "search_facts": search_facts, "latest": latest, "series": series,
    "active_medications": active_medications, "problem_list": problem_list, "get_resource": get_resource,
    "search_notes": search_notes, "search_literature": search_literature,
}


def tool_specs() -> list[dict[str, Any]]:
    """``[{"name", "description", "parameters"}]``: the docstring and the argument model's JSON schema."""
    specs = []
    for name, fn in TOOLS.items():
        hints = inspect.get_annotations(fn, eval_str=True)
        model = next((t for n, t in hints.items() if n not in ("patient", "return") and isinstance(t, type)
                      and issubclass(t, BaseModel)), ManifestArgs)
        specs.append({"name": name, "description": inspect.cleandoc(fn.__doc__ or name),
                      "parameters": model.model_json_schema()})
    return specs
