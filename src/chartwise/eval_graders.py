"""Graders for ``chartwise eval``: pure functions, no I/O, no model.

Normalisation (values, dates, yes/no, free text), exact match, evidence recall, citation precision,
answer accuracy, abstention detection, PubMedQA decision extraction and retrieval recall.
Every function takes plain data and returns plain data so the report can show per-item results.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

_NUM = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?|[-+]?\.\d+")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_US_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_WORD_DATE = re.compile(r"\b(" + "|".join(_MONTHS) + r"|" + "|".join(m[:3] for m in _MONTHS) +
                        r")\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.I)
_KEY = re.compile(r"\b([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:#\d+-\d+)?|PMID:\s?\d+)")

#: Phrases that mean "the record does not say" (abstention).
ABSTAIN_PATTERNS = [
    r"not (?:found|present|available|documented|recorded|mentioned|reported|listed|in) (?:in |within )?(?:the |this )?(?:patient'?s? )?(?:record|chart|evidence|data)",
    r"no (?:record|evidence|documentation|mention|data|result|results|measurement|value|values)\b[^.]{0,60}\b(?:found|available|in the record|in the chart|documented|recorded)",
    r"(?:record|chart|evidence) (?:does not|doesn't|did not) (?:contain|include|show|mention|document|have)",
    r"(?:there is|there are|i found|i could find|i can find) no\b",
    r"(?:cannot|can't|could not|couldn't|unable to) (?:find|locate|determine|answer|be determined)",
    r"\bnot (?:found|available) in the record\b",
    r"\binsufficient (?:evidence|information|data)\b",
    r"\bno (?:such|relevant) (?:information|data|record)\b",
    r"\bno\b[^.]{0,60}\b(?:found|documented|recorded|available|listed)\s+(?:in|within)\s+(?:the|this)\s+(?:patient'?s?\s+)?(?:record|chart)",
]
_ABSTAIN = [re.compile(p, re.I) for p in ABSTAIN_PATTERNS]


# ---------------------------------------------------------------------------- normalisation
def normalize_text(text: Any) -> str:
    """Lower case, punctuation to spaces, single spaces; parenthesised qualifiers like "(disorder)" dropped."""
    s = str(text or "").lower()
    s = re.sub(r"\((?:disorder|finding|procedure|situation|morphologic abnormality|observable entity|regime/therapy|qualifier value)\)", " ", s)
    s = re.sub(r"[^a-z0-9.%/]+", " ", s)
    s = re.sub(r"(?<![0-9])\.|\.(?![0-9])", " ", s)
    return " ".join(s.split())


def parse_number(text: Any) -> float | None:
    """The first number in ``text`` (commas as thousands separators), or the number itself."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text) if math.isfinite(float(text)) else None
    m = _NUM.search(str(text or ""))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def numbers_in(text: Any) -> list[float]:
    out = []
    for m in _NUM.finditer(str(text or "")):
        try:
            out.append(float(m.group(0).replace(",", "")))
        except ValueError:
            pass
    return out


def normalize_date(text: Any) -> str | None:
    """A date written as ISO, ``MM/DD/YYYY`` or ``March 2, 2019`` as ``YYYY-MM-DD``; the first one found."""
    if isinstance(text, datetime):
        return text.date().isoformat()
    if isinstance(text, date):
        return text.isoformat()
    s = str(text or "")
    found: list[tuple[int, str]] = []
    for m in _ISO_DATE.finditer(s):
        found.append((m.start(), f"{m.group(1)}-{m.group(2)}-{m.group(3)}"))
    for m in _US_DATE.finditer(s):
        found.append((m.start(), f"{m.group(3)}-{int(m.group(1)):02d}-{int(m.group(2)):02d}"))
    for m in _WORD_DATE.finditer(s):
        mon = m.group(1).lower()
        month = _MONTHS.get(mon) or next(v for k, v in _MONTHS.items() if k.startswith(mon[:3]))
        found.append((m.start(), f"{m.group(3)}-{month:02d}-{int(m.group(2)):02d}"))
    if not found:
        return None
    return min(found)[1]


def dates_in(text: Any) -> set[str]:
    s = str(text or "")
    out = {f"{m.group(1)}-{m.group(2)}-{m.group(3)}" for m in _ISO_DATE.finditer(s)}
    out |= {f"{m.group(3)}-{int(m.group(1)):02d}-{int(m.group(2)):02d}" for m in _US_DATE.finditer(s)}
    for m in _WORD_DATE.finditer(s):
        mon = m.group(1).lower()
        month = next(v for k, v in _MONTHS.items() if k.startswith(mon[:3]))
        out.add(f"{m.group(3)}-{month:02d}-{int(m.group(2)):02d}")
    return out


def normalize_yes_no(text: Any) -> str | None:
    """``yes`` / ``no`` / ``maybe`` from an answer's first decisive word, or None."""
    if isinstance(text, bool):
        return "yes" if text else "no"
    s = str(text or "").strip().lower()
    m = re.search(r"\b(yes|no|maybe|true|false|uncertain|unclear|not)\b", s)
    if not m:
        return None
    w = m.group(1)
    if w in ("true",):
        return "yes"
    if w in ("false",):
        return "no"
    if w in ("uncertain", "unclear"):
        return "maybe"
    if w == "not":  # "not diagnosed", "has not been" -> no; a bare "not" elsewhere is no decision
        return "no" if re.search(r"\b(?:has|have|had|was|were|is|did|does)\s+not\b|\bnot\s+(?:diagnosed|prescribed|been|received)", s) else None
    return w


def values_equal(answer: Any, gold: Any, *, tolerance: float | None = None, digits: int | None = None) -> bool:
    """Numeric equality after normalisation: within ``tolerance``, or equal when both are rounded to
    ``digits`` decimals (default: the precision the answer was written with, at least 0)."""
    a, g = parse_number(answer), parse_number(gold)
    if a is None or g is None:
        return False
    if tolerance is not None:
        return abs(a - g) <= tolerance + 1e-12
    if digits is None:
        m = re.search(r"\.(\d+)", str(answer)) if not isinstance(answer, (int, float)) else None
        digits = len(m.group(1)) if m else (0 if float(a).is_integer() else 6)
    return round(a, digits) == round(g, digits) or a == g


def answer_has_value(answer: str, gold: float, *, tolerance: float | None = None) -> bool:
    """Whether any number written in ``answer`` matches ``gold`` at the precision it was written with."""
    for m in _NUM.finditer(answer or ""):
        if values_equal(m.group(0), gold, tolerance=tolerance):
            return True
    return False


def exact_match(answer: Any, gold: Any) -> bool:
    return normalize_text(answer) == normalize_text(gold)


# ---------------------------------------------------------------------------- citations
def base_key(key: str) -> str:
    """``DocumentReference/x#10-20`` -> ``DocumentReference/x``; ``PMID: 123`` -> ``PMID:123``."""
    k = str(key).strip()
    if k.upper().startswith("PMID"):
        return "PMID:" + re.sub(r"\D", "", k)
    return k.split("#", 1)[0]


def keys_in(text: str) -> list[str]:
    """Citation keys written in square brackets (or bare) in an answer, in order, deduplicated."""
    seen: dict[str, None] = {}
    for m in _KEY.finditer(text or ""):
        seen.setdefault(base_key(m.group(1)), None)
    return list(seen)


def evidence_recall(retrieved: Iterable[str], gold: Iterable[str]) -> float | None:
    """Share of gold keys found among retrieved keys (span suffixes ignored); None when no gold keys."""
    g = {base_key(k) for k in gold}
    if not g:
        return None
    r = {base_key(k) for k in retrieved}
    return len(g & r) / len(g)


def citation_precision(cited: Iterable[str], gold: Iterable[str], supporting: Iterable[str] = ()) -> float | None:
    """Share of cited keys that are gold or support the answer (``supporting``, e.g. verified keys
    whose text states the gold value); None when nothing was cited."""
    c = [base_key(k) for k in cited]
    if not c:
        return None
    ok = {base_key(k) for k in gold} | {base_key(k) for k in supporting}
    return sum(1 for k in c if k in ok) / len(c)


# ---------------------------------------------------------------------------- answers
def is_abstention(answer: str) -> bool:
    """Whether an answer says the record does not hold the answer ("not found in the record")."""
    return any(p.search(answer or "") for p in _ABSTAIN)


def grade_answer(answer: str, gold: dict[str, Any]) -> dict[str, Any]:
    """Grade a free-text answer against a gold answer.

    ``gold``: ``{"type": "value"|"date"|"yes_no"|"text"|"abstain", "value": ..., "tolerance"?: float}``.
    Values: a number in the answer equal to the gold at the precision written (or within tolerance);
    dates: the gold ``YYYY-MM-DD`` among the dates written; yes/no: the first decisive word;
    text: the normalised gold phrase contained in the normalised answer; abstain: the answer abstains.
    Returns ``{"correct": bool, "abstained": bool}``.
    """
    kind = gold.get("type")
    val = gold.get("value")
    abstained = is_abstention(answer)
    if kind == "abstain":
        ok = abstained
    elif kind == "value":
        ok = answer_has_value(answer, float(val), tolerance=gold.get("tolerance"))
    elif kind == "date":
        ok = normalize_date(val) in dates_in(answer)
    elif kind == "yes_no":
        ok = normalize_yes_no(answer) == normalize_yes_no(val)
    elif kind == "text":
        ok = bool(normalize_text(val)) and normalize_text(val) in normalize_text(answer)
    else:
        raise ValueError(f"unknown gold answer type {kind!r}")
    return {"correct": bool(ok), "abstained": abstained}


def abstention_accuracy(items: Iterable[tuple[bool, bool]]) -> float | None:
    """Over (should_abstain, abstained) pairs: the share where the answer abstained exactly when it should."""
    pairs = list(items)
    if not pairs:
        return None
    return sum(1 for should, did in pairs if should == did) / len(pairs)


# ---------------------------------------------------------------------------- literature
def pubmedqa_decision(answer: str) -> str | None:
    """yes / no / maybe from a literature answer: an explicit ``Answer: X`` / ``Decision: X`` first,
    else the first decisive word."""
    s = answer or ""
    m = re.search(r"\b(?:final answer|answer|decision|verdict|conclusion)\s*[:\-]\s*\**\s*(yes|no|maybe)\b", s, re.I)
    if m:
        return m.group(1).lower()
    m = re.search(r"^\W*(yes|no|maybe)\b", s.strip(), re.I)
    if m:
        return m.group(1).lower()
    return normalize_yes_no(s)


def decision_accuracy(pairs: Iterable[tuple[str | None, str]]) -> float | None:
    ps = list(pairs)
    if not ps:
        return None
    return sum(1 for pred, gold in ps if pred is not None and pred == gold) / len(ps)


def retrieval_hit(retrieved: Iterable[str], pmid: str, k: int | None = None) -> tuple[bool, int | None]:
    """Whether the item's own abstract ``PMID:pmid`` is in the top ``k`` retrieved keys, and its rank (1-based)."""
    keys = [base_key(x) for x in retrieved]
    target = base_key(f"PMID:{pmid}")
    rank = keys.index(target) + 1 if target in keys else None
    return (rank is not None and (k is None or rank <= k)), rank


def mean(xs: Iterable[float | None]) -> float | None:
    v = [float(x) for x in xs if x is not None]
    return sum(v) / len(v) if v else None


def utc(dt: datetime) -> datetime:
    """An aware datetime in UTC, a naive one taken as UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
