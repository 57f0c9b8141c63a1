"""Tool calls come only from the planner's reading of the question (prompt-injection defence).

Two layers:

1. **No record free text in the planning turn.**  The plan prompt shows the gathered evidence as
   keys, dates and coded one-liners (``evidence.plan_view``); note, report and paper text is
   withheld, so an instruction written in a note cannot reach the turn in which tools are chosen.
2. **Arguments checked against the question** (:class:`PlanGuard`), for a model that is compromised
   anyway (a poisoned history, a backend that misbehaves): a planned call is refused when one of its
   free-text arguments uses a word that occurs in the patient's free text (notes, reports, papers
   gathered this turn) but not in the question, the manifest or the record's coded vocabulary, or
   when it carries an identifying value of the patient (name, birth date, address, identifiers,
   telecom) that the question does not.  Citation-key arguments (``Type/id``) are lookups inside the
   patient's own record and pass.  Tools are read-only in any case.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .evidence import is_free_text

_WORD = re.compile(r"[a-z][a-z0-9]+")
_KEY = re.compile(r"^(?:[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:#\d+-\d+)?|PMID:\d+)$")
_STOP = set("about after all and any are been before being but can could did does for from had has have her him his "
            "how into its last latest more most not off once only other over same she should some such than that the "
            "their them then there these they this those through too under until very was were what when where which "
            "while who whom why will with would you your".split())


def terms(text: str) -> set[str]:
    return {w for w in _WORD.findall((text or "").lower()) if len(w) > 2 and w not in _STOP}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


class PlanGuard:
    """Vets the planner's tool calls for one patient (see the module docstring)."""

    def __init__(self, record: Any = None, tool_names: Iterable[str] = ()) -> None:
        coded: set[str] = set()
        free: set[str] = set()
        self.phi: list[str] = []
        if record is not None:
            for f in getattr(record, "facts", None) or []:
                coded |= terms(getattr(f, "line", "") or "")
                if getattr(f, "text", None):
                    free |= terms(f.text)
            try:
                from chartwise.fhir.deid import phi_values
                self.phi = [v for v in phi_values(record.patient) if len(v) >= 3]
            except Exception:  # noqa: BLE001 - no Patient resource: nothing identifying to look for
                self.phi = []
        self.coded = coded | {t for n in tool_names for t in terms(n.replace("_", " "))}
        self.free = free
        self.record = record

    def has_key(self, key: str) -> bool:
        rec = self.record
        if rec is None:
            return False
        base = key.split("#", 1)[0]
        if base in (getattr(rec, "facts_by_key", None) or {}):
            return True
        try:
            return bool(rec.get(base))
        except Exception:  # noqa: BLE001
            return False

    def check(self, call: dict[str, Any], *, question: str, manifest: Any = None,
              evidence: Iterable[dict] = ()) -> str | None:
        """``None`` when the call may run, else the reason it is refused (no record text in it)."""
        trusted = terms(question) | self.coded | terms(str(manifest or ""))
        tainted = set(self.free)
        for it in evidence:
            if is_free_text(it):
                tainted |= terms(it.get("text", ""))
        tainted -= trusted
        low_q = (question or "").lower()
        evidence = list(evidence)
        known = {it.get("key") for it in evidence}
        for s in _strings(call.get("arguments") or {}):
            if _KEY.match(s.strip()):
                if s.strip() not in known and not self.has_key(s.strip()):
                    return "citation key not in the patient's record nor in the gathered evidence"
                continue
            low = s.lower()
            for v in self.phi:
                if v.lower() in low and v.lower() not in low_q:
                    return "argument carries an identifying value of the patient that the question does not"
            bad = sorted(terms(s) & tainted)
            if bad:
                return f"argument uses {len(bad)} word(s) found only in record free text, not in the question"
        return None


# -- answers that repeat injected instructions ----------------------------------------------------
_INDICATORS = re.compile(
    r"ignore\s+(?:all\s+)?(?:the\s+)?(?:previous|prior|above|earlier)\s+instructions|disregard\s+(?:the|all|any|previous)"
    r"|system\s+prompt|developer\s+mode|system\s+override|note\s+to\s+(?:ai|the\s+assistant|the\s+model)"
    r"|you\s+are\s+(?:now\s+)?(?:an?\s+)?(?:unrestricted|in\s+developer|chatgpt|the\s+assistant)"
    r"|(?:^|\n)\s*(?:system|assistant)\s*:|instruction\s+from|the\s+assistant\s+must|hidden\s+instructions"
    r"|reply\s+only\s+with|answer\s+every\s+question|call\s+(?:the\s+|every\s+)?\w*\s*tool"
    r"|[{｛]\s*[\"“]?(?:tool|final|name|function)[\"”]?\s*:"
    r"|[<‹]\s*/?\s*(?:start_of_turn|end_of_turn|system|tool_call|note)\s*[>›]|tool_code|‹‹‹|›››|<<<|>>>"
    r"|[\u202a-\u202e\u2066-\u2069]", re.I)
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?\n]))\s*")


def injected_spans(text: str) -> list[str]:
    """The parts of record text that look like injected instructions: from the sentence holding an
    indicator (``ignore previous instructions``, a role tag, a tool-call object, a forged block
    marker, ``NOTE TO AI``, bidi controls...) to the end of its line, and after a chat-turn token to
    the end of the text."""
    spans: list[str] = []
    if not text:
        return spans
    for m in _INDICATORS.finditer(text):
        start = max(text.rfind(".", 0, m.start()), text.rfind("\n", 0, m.start()), text.rfind("!", 0, m.start()),
                    text.rfind("?", 0, m.start())) + 1
        if re.match(r"[<‹]\s*/?\s*(?:start_of_turn|end_of_turn)", m.group(), re.I):
            end = len(text)
        else:
            end = text.find("\n", m.end())
            end = len(text) if end < 0 else end
        spans.append(text[start:end])
    return spans


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def echo_filter(registry: dict[str, dict]) -> Any:
    """A ``verify(..., reject=...)`` hook: a statement that repeats four or more consecutive words of
    an injected span found in any evidence text is removed (whatever it cites)."""
    shingles: set[tuple[str, ...]] = set()
    for item in registry.values():
        for span in injected_spans(item.get("text") or ""):
            shingles |= _shingles(span, 4)
    if not shingles:
        return None

    def reject(statement: str) -> str | None:
        body = re.sub(r"\[[^\]]*\]", " ", statement)
        if _shingles(body, 4) & shingles:
            return "repeats instructions found in record text (possible prompt injection)"
        return None
    return reject
