"""The evidence pack: what the model reads for one question, chosen deterministically.

``build_evidence(question, patient, budget)``:

1. analyses the question (:mod:`.question`): concept phrase, category cues, dates and relative time
   against ``now`` (default: the record's last date), question types;
2. resolves the concept phrase to record concepts (vocabulary groups first, then BM25 + dense RRF);
3. picks facts by type: ``count``/``window`` -> every fact in the window; ``at_date`` -> facts on
   the day, else the last before it (and the next after); ``abnormal`` -> the latest abnormal
   results; ``first`` -> the earliest fact; ``ever`` -> first and latest; ``list`` -> the whole list
   (allergies, active problems, active medications); ``latest`` -> the newest fact per concept with
   the value before it; ``note`` cues (or no concept in the record) -> note passages;
4. ranks (priority, then recency), de-duplicates by citation, and fills the token budget in rank
   order (large groups are rendered compactly so a count question can keep every member).
"""
from __future__ import annotations

import re

from datetime import date

from pydantic import BaseModel, Field

from chartwise.fhir.facts import Category, ClinicalFact
from chartwise.fhir.store import PatientRecord

from .index import Concept, patient_index
from .question import QuestionAnalysis, analyze, named_resource_types
from .structured import (AsOfArgs, EvidenceItem, active_medications, fact_item, problem_list,
                         text_item)
from .tokens import Tokenizer

DEFAULT_BUDGET = 1500
_CAT_OF_CUE = {"immunization": ["immunization"], "allergy": ["allergy"], "medication": ["medication"],
               "condition": ["condition"], "procedure": ["procedure"], "encounter": ["encounter"], "vital": ["vital"],
               # an X-ray or scan is recorded as an ImagingStudy, a Procedure or a DiagnosticReport
               "imaging": ["imaging", "procedure", "report"]}


class EvidencePack(BaseModel):
    """The ``chartwise evidence --json`` object (``id`` is set by the caller)."""

    id: str | None = None
    question: str
    items: list[EvidenceItem] = Field(default_factory=list)
    tokens: int = 0
    analysis: QuestionAnalysis | None = Field(default=None, exclude=True)
    dropped: int = Field(default=0, exclude=True, description="candidates left out by the budget")

    def to_json(self) -> dict:
        return {"id": self.id, "question": self.question,
                "items": [{"citation": i.citation, "text": i.text, "tokens": i.tokens} for i in self.items],
                "tokens": self.tokens}


class _Cands:
    def __init__(self, tokenizer: Tokenizer | None) -> None:
        self.items: dict[str, tuple[float, EvidenceItem]] = {}
        self.tok = tokenizer

    def fact(self, f: ClinicalFact, prio: float, compact: bool = False) -> None:
        if f.key in self.items and self.items[f.key][0] >= prio:
            return
        self.items[f.key] = (prio, fact_item(f, self.tok, compact))

    def item(self, it: EvidenceItem, prio: float) -> None:
        if it.citation not in self.items or self.items[it.citation][0] < prio:
            self.items[it.citation] = (prio, it)


def _dated(c: Concept, a: QuestionAnalysis) -> list[ClinicalFact]:
    lo = a.date_from.isoformat() if a.date_from else None
    hi = a.date_to.isoformat() if a.date_to else None
    return [f for f in c.facts if f.day and (lo is None or f.day >= lo) and (hi is None or f.day <= hi)]


def _concept_categories(a: QuestionAnalysis) -> list[str] | None:
    cats = list(dict.fromkeys(cat for c in a.categories for cat in _CAT_OF_CUE.get(c, ())))
    if "vital" in cats or "lab" in a.categories:
        return None  # labs and vitals are often miscategorized; let the concept decide
    return cats or None


def build_evidence(question: str, patient: PatientRecord, budget: int = DEFAULT_BUDGET, now: date | str | None = None,
                   tokenizer: Tokenizer | None = None) -> EvidencePack:
    """The evidence pack for ``question`` over ``patient``'s record, at most ``budget`` tokens."""
    idx = patient_index(patient)
    ref = now if isinstance(now, date) else (date.fromisoformat(now[:10]) if isinstance(now, str) else None)
    if ref is None and idx.last_day:
        ref = date.fromisoformat(idx.last_day)
    a = analyze(question, ref)
    cands = _Cands(tokenizer)
    types = set(a.types)
    cats = _concept_categories(a)
    phrase = a.concept_text or question
    vec = idx.store.embed_query(phrase)

    # whole lists
    # the question names a concept of this record verbatim ("... for Encounter for problem", "... have
    # Documentation of current medications"): that concept wins over category cues inside its name
    named = named_concepts(idx.concepts, question)
    if named:
        types.discard("list")  # "is she allergic to X", "current X": the named concept, not the whole list
    if not named and ("list" in types or ("allergy" in a.categories and not a.concept_text.strip())):
        if "allergy" in a.categories:
            for f in patient.facts:
                if f.category == Category.allergy:
                    cands.fact(f, 10.0)
        elif "medication" in a.categories:
            for it in active_medications(AsOfArgs(as_of=a.at_date.isoformat() if a.at_date else None), patient).items:
                cands.item(it, 9.0)
        elif "condition" in a.categories or "problem" in question.lower():
            for it in problem_list(AsOfArgs(as_of=a.at_date.isoformat() if a.at_date else None), patient).items:
                cands.item(it, 9.0)
        elif "immunization" in a.categories:
            for f in patient.facts:
                if f.category == Category.immunization and _dated_ok(f, a):
                    cands.fact(f, 8.0, compact=True)

    concepts: list[Concept] = []
    hits = idx.search_concepts(phrase, k=12, categories=cats, vector=vec, vocab_text=a.vocab_text)
    if not hits and cats:
        hits = idx.search_concepts(phrase, k=12, vector=vec, vocab_text=a.vocab_text)
    grouped = [h for h in hits if h.group_match]
    if grouped:
        best = max(len(h.group_match or "") for h in grouped)
        concepts = _by_named_type([h.concept for h in grouped if len(h.group_match or "") == best], question)[:8]
        extra = [h.concept for h in hits if not h.group_match][:1]
    else:
        concepts = [h.concept for h in hits[:2]]
        extra = [h.concept for h in hits[2:3]]
    # a category cue with no concept words: the category itself ("last vaccine", "latest visit")
    if not a.concept_text.strip() or a.generic or (cats and not hits):
        by_cat = [c for c in idx.concepts if cats and c.category in cats]
        if by_cat:
            concepts = sorted(by_cat, key=lambda c: max((f.day or "") for f in c.facts), reverse=True)[:6]
            extra = []

    if named:
        # the named concept and every concept sharing a code with it (the order and the result of one
        # test), results before orders and referrals
        codes = {code for c in named for code in c.codes}
        same = [c for c in idx.concepts if c not in named and codes & set(c.codes)]
        concepts = _by_named_type(sorted(named + same, key=lambda c: c.category == Category.other.value), question)
        concepts, extra = concepts[:4], []

    for rank, c in enumerate(concepts + extra):
        weight = 5.0 - rank * 0.3 if c in concepts else 1.0
        facts = [f for f in c.facts if f.day]
        if not facts:
            continue
        window = _dated(c, a)
        if "count" in types or "window" in types:
            compact = len(window) > 6
            for f in window:
                cands.fact(f, weight + 2.0, compact=compact)
            if not window and "count" not in types:
                cands.fact(facts[-1], weight)
        if "at_date" in types and a.at_date is not None:
            day = a.at_date.isoformat()
            same = [f for f in facts if f.day == day]
            before = [f for f in facts if f.day < day]
            after = [f for f in facts if f.day > day]
            for f in same:
                cands.fact(f, weight + 3.0)
            if before:
                cands.fact(before[-1], weight + (1.0 if same else 2.5))
            if after and not same:
                cands.fact(after[0], weight + 0.5, compact=True)
        if "abnormal" in types:
            pool = window if (a.date_from or a.date_to) else facts
            abn = [f for f in pool if f.abnormal]
            for i, f in enumerate(reversed(abn[-3:])):
                cands.fact(f, weight + 2.5 - i * 0.5)
            if not abn and pool:
                cands.fact(pool[-1], weight)
        if "first" in types:
            cands.fact(facts[0], weight + 2.5)
            if c.category in ("condition", "medication", "allergy") and len(facts) > 1:
                cands.fact(facts[-1], weight + 0.5, compact=True)
        if "ever" in types:
            cands.fact(facts[-1], weight + 2.0)
            cands.fact(facts[0], weight + 1.0, compact=True)
            if len(c.resource_types) > 1:
                # the last of each kind: when last ordered and when last given are different answers
                for rt in c.resource_types:
                    last = next((f for f in reversed(facts) if f.resource_type == rt), None)
                    if last is not None:
                        cands.fact(last, weight + 1.5)
        if not types & {"count", "window", "at_date", "abnormal", "first", "ever", "list"} or "latest" in types:
            cands.fact(facts[-1], weight + 2.0)
            if rank == 0 and len(facts) > 1:
                cands.fact(facts[-2], weight - 0.5, compact=True)
            if rank == 0 and len(facts) > 2:
                cands.fact(facts[-3], weight - 1.0, compact=True)

    # notes: asked for, or nothing coded answers the question
    if idx.chunks and ("note" in types or not concepts or not hits):
        lo = a.date_from.isoformat() if a.date_from else None
        hi = a.date_to.isoformat() if a.date_to else None
        if a.at_date is not None:
            lo = hi = a.at_date.isoformat()
        chunk_hits = idx.search_chunks(phrase, k=4, date_from=lo, date_to=hi, vector=vec)
        if not chunk_hits and (lo or hi):
            chunk_hits = idx.search_chunks(phrase, k=4, vector=vec)
        base = 7.5 if "note" in types else 3.0
        for i, h in enumerate(chunk_hits):
            ch = h.chunk
            cands.item(text_item(ch.citation, f"{ch.note.day or ''} {ch.note.label}: {' '.join(ch.text.split())}".strip(),
                                 ch.note.day, tokenizer), base - i * 0.4)

    ranked = sorted(cands.items.values(), key=lambda pi: (-pi[0], -(int((pi[1].date or "0").replace("-", "") or 0)),
                                                          pi[1].citation))
    items, total, dropped = [], 0, 0
    for _, it in ranked:
        if total + it.tokens > budget:
            dropped += 1
            continue
        items.append(it)
        total += it.tokens
    return EvidencePack(question=question, items=items, tokens=total, analysis=a, dropped=dropped)


def _by_named_type(concepts: list[Concept], question: str) -> list[Concept]:
    """Stable re-order: concepts carried by a resource type the question names come first."""
    types = named_resource_types(question)
    if not types:
        return concepts

    def rank(c: Concept) -> int:
        return min((types.index(rt) for rt in c.resource_types if rt in types), default=len(types))

    return sorted(concepts, key=rank)


def _dated_ok(f: ClinicalFact, a: QuestionAnalysis) -> bool:
    if f.day is None:
        return not (a.date_from or a.date_to)
    if a.date_from and f.day < a.date_from.isoformat():
        return False
    if a.date_to and f.day > a.date_to.isoformat():
        return False
    return True


def _norm_words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


_TRAILING_TAG = re.compile(r"\s*\([^()]*\)\s*$")


def named_concepts(concepts: list, question: str, min_chars: int = 8) -> list:
    """Concepts whose label (or a code display) stands word for word in the question, longest first."""
    q = _norm_words(question)
    found = []
    for c in concepts:
        names = {c.label, *c.displays}
        # clinicians do not say the terminology's tags: "Body mass index 30+ - obesity (finding)"
        names |= {_TRAILING_TAG.sub("", n) for n in names}
        best = max((len(n) for n in names if len(n) >= min_chars and _norm_words(n) in q), default=0)
        if best:
            found.append((best, c))
    found.sort(key=lambda bc: -bc[0])
    return [c for n, c in found if n == found[0][0]] if found else []

