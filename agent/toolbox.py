"""The agent's view of retrieval: a manifest, a deterministic seed pack, and typed tools.

One path: :class:`RetrievalToolbox` wraps ``chartwise.tools`` (``build_evidence`` seeds; the typed
structured tools, ``search_literature`` for literature requests, and the image tools of
``chartwise.tools.image_tools`` for a patient whose record carries images) and turns every tool
result into evidence items (citation key, text, date, tokens) the verifier treats alike.
"""
from __future__ import annotations

import inspect
from collections import Counter
from typing import Any, Callable

from pydantic import BaseModel

from chartwise.agent.models import ToolSpec

from .evidence import as_items
from .state import EvidenceItem

#: The image tools (``chartwise.tools.image_tools.IMAGE_TOOLS``): offered to the planner only for
#: imaging questions and requests with images (``agent.nodes.plan``).
IMAGE_TOOL_NAMES = ("classify_images", "search_images", "similar_images")


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


class RetrievalToolbox(Toolbox):
    """Adapter over ``chartwise.tools``: ``build_evidence`` seeds, the typed tools are offered to the model."""

    TOOL_NAMES = ("search_facts", "latest", "series", "active_medications", "problem_list", "get_resource",
                  "search_notes", "search_literature")

    def __init__(self, tools_mod: Any, patient: Any, *, literature: bool = False, corpus: str | None = None) -> None:
        super().__init__()
        self.mod, self.patient, self.corpus = tools_mod, patient, corpus
        for name in self.TOOL_NAMES:
            fn = getattr(tools_mod, name, None)
            if fn is None or (name == "search_literature" and not literature):
                continue
            if patient is None and name != "search_literature":
                continue                      # no record: literature only
            bound = self._bind(fn, name)
            if bound is not None:
                self._tools[name] = bound
        if patient is not None and _has_images(patient):
            from chartwise.tools.image_tools import IMAGE_TOOLS
            for name, (fn, _args) in IMAGE_TOOLS.items():
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

    def has_tool(self, name: str) -> bool:
        return name in self._tools

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


def _has_images(patient: Any) -> bool:
    """Whether the record carries an image attachment (Media, DocumentReference, DiagnosticReport
    presentedForm, Binary) — cheap: content types only, nothing is decoded."""
    by_key = patient.records.refs.by_key
    for key in patient.keys:
        res = by_key.get(key) or {}
        rtype = res.get("resourceType")
        if rtype == "Media":
            atts = [res.get("content")]
        elif rtype == "DocumentReference":
            atts = [c.get("attachment") for c in res.get("content") or [] if isinstance(c, dict)]
        elif rtype == "DiagnosticReport":
            atts = list(res.get("presentedForm") or [])
        elif rtype == "Binary":
            atts = [res]
        else:
            continue
        if any(isinstance(a, dict) and str(a.get("contentType", "")).startswith(("image/", "application/dicom"))
               for a in atts):
            return True
    return False


def _facts_manifest(patient: Any) -> dict[str, Any]:
    """Fallback manifest (counts per category, date range) when ``chartwise.tools.manifest`` is absent."""
    if patient is None:
        return {}
    facts = patient.facts
    days = sorted(f.day for f in facts if f.day)
    return {"patient": patient.patient_key, "facts": len(facts),
            "categories": dict(Counter(str(getattr(f.category, "value", f.category)) for f in facts)),
            "date_range": [days[0] if days else None, days[-1] if days else None]}


def load_corpus(path: str | None = None) -> dict[str, dict[str, Any]]:
    """The literature corpus as ``{pmid: {"title", "text", "year"}}`` (``chartwise.tools.load_corpus``;
    no path: the corpus the retrieval layer ships)."""
    from chartwise.tools import load_corpus as _load

    key = str(path or "")
    if key not in _CORPORA:
        _CORPORA[key] = {p.pmid: {"title": p.title, "text": p.abstract, "year": p.year} for p in _load(path)}
    return _CORPORA[key]


_CORPORA: dict[str, dict[str, dict[str, Any]]] = {}


def make_toolbox(patient: Any, *, literature: bool = False, corpus: str | None = None) -> Toolbox:
    """The agent's toolbox over ``chartwise.tools`` for one patient (``None``: literature only)."""
    import chartwise.tools as tools_mod

    return RetrievalToolbox(tools_mod, patient, literature=literature, corpus=corpus)
