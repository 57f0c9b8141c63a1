"""The agent's view of retrieval: a manifest, a deterministic seed pack, and typed tools.

``make_toolbox`` wraps ``chartwise.tools`` (``build_evidence`` and the typed tools) when the
retrieval layer provides them; otherwise a small lexical toolbox over the record's clinical facts
stands in (same contract: evidence items with citation key, text, date, tokens).
"""
from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from chartwise.agent.models import ToolSpec

from .evidence import as_items, estimate
from .state import EvidenceItem

_WORD = re.compile(r"[a-z0-9]+")
_STOP = set("a an and are as at be by did do does for from had has have her his how in is it its last latest me "
            "most my of on or patient she show the their there this to was were what when which who why with".split())


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


class Toolbox:
    """Base: subclasses fill ``_tools`` with (callable, ToolSpec) and implement ``seed``/``manifest``."""

    def __init__(self) -> None:
        self._tools: dict[str, tuple[Callable[[BaseModel], Any], ToolSpec]] = {}

    def add(self, fn: Callable[..., Any], *, name: str | None = None, spec: ToolSpec | None = None) -> None:
        spec = spec or ToolSpec.from_callable(fn, name=name)
        self._tools[spec.name] = (fn, spec)

    def specs(self) -> list[ToolSpec]:
        return [s for _, s in self._tools.values()]

    def call(self, name: str, arguments: dict[str, Any]) -> list[EvidenceItem]:
        fn, spec = self._tools[name]
        args = spec.args_model.model_validate(arguments)
        return as_items(fn(args), source=name)

    def manifest(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def seed(self, question: str, budget: int) -> list[EvidenceItem]:  # pragma: no cover - abstract
        raise NotImplementedError


# -- the retrieval layer (chartwise.tools) ---------------------------------------------------------
class RetrievalToolbox(Toolbox):
    """Adapter over ``chartwise.tools``: ``build_evidence`` seeds, the typed tools are offered to the model."""

    TOOL_NAMES = ("search_facts", "latest", "series", "active_medications", "problem_list", "get_resource",
                  "search_notes", "search_literature")

    def __init__(self, tools_mod: Any, patient: Any, *, literature: bool = False, corpus: str | None = None) -> None:
        super().__init__()
        self.mod, self.patient, self.corpus = tools_mod, patient, corpus
        for name in self.TOOL_NAMES:
            fn = getattr(tools_mod, name, None)
            if fn is None or (name == "search_literature") != literature and name == "search_literature":
                continue
            bound = self._bind(fn, name)
            if bound is not None:
                self._tools[name] = bound

    def _bind(self, fn: Callable[..., Any], name: str):
        params = list(inspect.signature(fn).parameters.values())
        hints = inspect.get_annotations(fn, eval_str=True)
        model = next((hints.get(p.name) for p in params if isinstance(hints.get(p.name), type)
                      and issubclass(hints.get(p.name), BaseModel) and p.name not in ("patient",)), None)
        if model is None:
            return None
        arg_name = next(p.name for p in params if hints.get(p.name) is model)
        doc = inspect.cleandoc(fn.__doc__ or name)
        spec = ToolSpec(name=name, description=doc, args_model=model)
        others = [p.name for p in params if p.name != arg_name]

        def call(args: BaseModel, _fn=fn) -> Any:
            kw: dict[str, Any] = {arg_name: args}
            if "patient" in others:
                kw["patient"] = self.patient
            if "corpus" in others and self.corpus:
                kw["corpus"] = self.corpus
            return _fn(**kw)
        return call, spec

    def manifest(self) -> dict[str, Any]:
        fn = getattr(self.mod, "manifest", None)
        if fn is None or self.patient is None:
            return _facts_manifest(self.patient)
        try:
            out = fn(self.patient)
        except TypeError:
            out = fn(patient=self.patient)
        return out.model_dump(mode="json") if hasattr(out, "model_dump") else dict(out)

    def seed(self, question: str, budget: int) -> list[EvidenceItem]:
        if self.patient is None:
            return []
        return as_items(self.mod.build_evidence(question, self.patient, budget), source="build_evidence")


# -- stand-in over clinical facts -------------------------------------------------------------------
class SearchFactsArgs(BaseModel):
    query: str = Field(description="words to look for in the record (a lab, condition, drug, procedure...)")
    category: str | None = Field(default=None, description="lab, vital, medication, condition, procedure, encounter, immunization, report, note")
    limit: int = Field(default=10, ge=1, le=50)


class LatestArgs(BaseModel):
    query: str = Field(description="the measurement, e.g. 'hemoglobin a1c' or 'systolic blood pressure'")
    n: int = Field(default=3, ge=1, le=20, description="how many most recent results")


class NoArgs(BaseModel):
    pass


class GetResourceArgs(BaseModel):
    key: str = Field(description="citation key Type/id")


class SearchLiteratureArgs(BaseModel):
    query: str = Field(description="the clinical question or key terms")
    limit: int = Field(default=3, ge=1, le=10)


def _facts_manifest(patient: Any) -> dict[str, Any]:
    if patient is None:
        return {}
    facts = patient.facts
    days = sorted(f.day for f in facts if f.day)
    return {"patient": patient.patient_key, "facts": len(facts),
            "categories": dict(Counter(str(getattr(f.category, "value", f.category)) for f in facts)),
            "date_range": [days[0] if days else None, days[-1] if days else None]}


def _fact_item(f: Any, source: str) -> EvidenceItem:
    text = f.line
    if f.text:
        text = f"{text}\n{f.text[:1200]}"
    return EvidenceItem(key=f.key, text=text, date=f.day, tokens=estimate(text) + 8, source=source)


def _score(terms: list[str], text: str) -> int:
    words = set(_WORD.findall(text.lower()))
    return sum(1 for t in terms if t in words or any(w.startswith(t) for w in words if len(t) > 3))


class FactsToolbox(Toolbox):
    """Lexical retrieval over ``PatientRecord.facts`` (used when ``chartwise.tools`` lacks the API)."""

    def __init__(self, patient: Any, *, literature: bool = False, corpus: str | None = None) -> None:
        super().__init__()
        self.patient = patient
        self.corpus = corpus
        if patient is not None:
            self.add(self.search_facts, name="search_facts")
            self.add(self.latest, name="latest")
            self.add(self.active_medications, name="active_medications")
            self.add(self.problem_list, name="problem_list")
            self.add(self.get_resource, name="get_resource")
        if literature:
            self.add(self.search_literature, name="search_literature")

    def manifest(self) -> dict[str, Any]:
        return _facts_manifest(self.patient)

    def _facts(self) -> list[Any]:
        return self.patient.facts if self.patient is not None else []

    def search_facts(self, args: SearchFactsArgs) -> list[EvidenceItem]:
        """Facts whose text matches the query, best first, most recent first among equals."""
        terms = _terms(args.query)
        scored = []
        for f in self._facts():
            cat = str(getattr(f.category, "value", f.category))
            if args.category and cat != args.category:
                continue
            s = _score(terms, f.line + " " + (f.text or "")[:2000])
            if s:
                scored.append((s, f.day or "", f))
        scored.sort(key=lambda x: (-x[0], x[1]), reverse=False)
        scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
        return [_fact_item(f, "search_facts") for _, _, f in scored[: args.limit]]

    def latest(self, args: LatestArgs) -> list[EvidenceItem]:
        """The most recent results of one measurement (labs and vitals)."""
        terms = _terms(args.query)
        hits = [f for f in self._facts() if str(getattr(f.category, "value", f.category)) in ("lab", "vital")
                and f.value is not None and _score(terms, f.line) >= max(1, len(terms) - 1)]
        hits.sort(key=lambda f: f.day or "", reverse=True)
        return [_fact_item(f, "latest") for f in hits[: args.n]]

    def active_medications(self, args: NoArgs) -> list[EvidenceItem]:
        """Medications with an active status."""
        return [_fact_item(f, "active_medications") for f in self._facts()
                if str(getattr(f.category, "value", f.category)) == "medication" and (f.status or "") == "active"]

    def problem_list(self, args: NoArgs) -> list[EvidenceItem]:
        """Conditions on the problem list with their status and onset."""
        return [_fact_item(f, "problem_list") for f in self._facts()
                if str(getattr(f.category, "value", f.category)) == "condition"]

    def get_resource(self, args: GetResourceArgs) -> list[EvidenceItem]:
        """One fact by its citation key."""
        f = self.patient.facts_by_key.get(args.key) if self.patient is not None else None
        return [_fact_item(f, "get_resource")] if f is not None else []

    def search_literature(self, args: SearchLiteratureArgs) -> list[EvidenceItem]:
        """Abstracts from the literature corpus that match the question (PubMedQA-format JSON)."""
        corpus = load_corpus(self.corpus)
        terms = _terms(args.query)
        scored = sorted(((_score(terms, p["text"]), pmid, p) for pmid, p in corpus.items()), key=lambda x: -x[0])
        out = []
        for s, pmid, p in scored[: args.limit]:
            if s:
                text = f"{p['title']} {p['text'][:1500]}"
                out.append(EvidenceItem(key=f"PMID:{pmid}", text=text, date=p.get("year"), tokens=estimate(text) + 8,
                                        source="search_literature"))
        return out

    def seed(self, question: str, budget: int) -> list[EvidenceItem]:
        items = self.search_facts(SearchFactsArgs(query=question, limit=12)) if self.patient is not None else []
        out, used = [], 0
        for it in items:
            if used + it["tokens"] > budget:
                break
            out.append(it)
            used += it["tokens"]
        return out


DEFAULT_CORPUS = "/work/shared/data/literature/pubmedqa-dev.json"
_CORPORA: dict[str, dict[str, dict[str, Any]]] = {}


def load_corpus(path: str | None) -> dict[str, dict[str, Any]]:
    path = path or DEFAULT_CORPUS
    if path not in _CORPORA:
        p = Path(path)
        if not p.exists():
            from chartwise.fhir.errors import ConfigError
            raise ConfigError(f"literature corpus {path} not found: pass --corpus PATH (PubMedQA-format JSON)")
        raw = json.loads(p.read_text("utf-8"))
        out = {}
        for pmid, v in (raw.items() if isinstance(raw, dict) else ((str(r.get("pmid")), r) for r in raw)):
            ctx = v.get("CONTEXTS") or v.get("contexts") or v.get("abstract") or ""
            text = " ".join(ctx) if isinstance(ctx, list) else str(ctx)
            out[str(pmid)] = {"title": v.get("QUESTION") or v.get("title") or "", "text": text,
                              "year": str(v.get("YEAR") or v.get("year") or "") or None}
        _CORPORA[path] = out
    return _CORPORA[path]


def make_toolbox(patient: Any, *, literature: bool = False, corpus: str | None = None) -> Toolbox:
    try:
        import chartwise.tools as tools_mod
    except ImportError:  # pragma: no cover
        tools_mod = None
    if tools_mod is not None and hasattr(tools_mod, "build_evidence"):
        return RetrievalToolbox(tools_mod, patient, literature=literature, corpus=corpus)
    return FactsToolbox(patient, literature=literature, corpus=corpus)
