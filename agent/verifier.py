"""The citation verifier: deterministic, no model.

Rules, applied to every statement (sentence or bullet) of a draft:

1. A statement must carry at least one citation ``[Key]`` (several: ``[A, B]`` or ``[A][B]``).
   Headings, labels ending in ``:`` and a bare ``Yes.``/``No.``/``Maybe.`` are structure, not statements.
2. Every cited key must exist in the evidence registry (a note span ``DocumentReference/id#s-e`` is
   accepted when it lies inside a registered span or note). Unknown keys are removed from the text
   and listed; a statement left with no known citation is unsupported.
3. Every number, date and unit in the statement must appear in the text of the evidence it cites
   (numbers may be rounded: ``7.9`` matches ``7.893``; ``2019-03`` matches ``2019-03-02``; a year
   matches any date in that year; unit spellings are normalized, ``mm[Hg]`` = ``mmHg``).
4. Unsupported statements are removed from the answer and returned with the reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

KEY_RE = r"(?:[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:#\d+-\d+)?|PMID:\s?\d+|file:[^\s\[\],;]+)"
_BRACKET_RE = re.compile(r"\[([^\[\]\n]{1,400})\]")
_KEY_ONLY_RE = re.compile(rf"^\s*{KEY_RE}\s*$")
_KEY_FIND_RE = re.compile(KEY_RE)
_VERDICT_RE = re.compile(r"^\W*(yes|no|maybe)\W*$", re.I)
_LIST_MARKER_RE = re.compile(r"^(\s*(?:[-*+•]|\d{1,2}[.)])\s+)")
_SENT_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(\"'*])")

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MON = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE_PATTERNS = [
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?:T[\d:.+\-Z]*)?"), lambda m: f"{m[1]}-{m[2]}-{m[3]}"),
    (re.compile(rf"\b{_MON}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I),
     lambda m: f"{m[3]}-{_MONTHS[m[1].lower().rstrip('.')[:4] if m[1].lower().startswith('sept') else m[1].lower().rstrip('.')[:3]]:02d}-{int(m[2]):02d}"),
    (re.compile(rf"\b(\d{{1,2}})\s+{_MON}\s+(\d{{4}})\b", re.I),
     lambda m: f"{m[3]}-{_MONTHS[m[2].lower().rstrip('.')[:3]]:02d}-{int(m[1]):02d}"),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), lambda m: f"{m[3]}-{int(m[1]):02d}-{int(m[2]):02d}"),
    (re.compile(r"\b(\d{4})-(\d{2})\b(?!-)"), lambda m: f"{m[1]}-{m[2]}"),
    (re.compile(rf"\b{_MON}\s+(\d{{4}})\b", re.I), lambda m: f"{m[2]}-{_MONTHS[m[1].lower().rstrip('.')[:3]]:02d}"),
]
_UNITS = [
    "mL/min/1.73 m2", "mL/min/1.73m2", "mL/min", "mg/dL", "mg/dl", "g/dL", "g/dl", "mmol/L", "mmol/l", "mmol/mol",
    "mEq/L", "meq/l", "µmol/L", "umol/L", "ng/mL", "pg/mL", "ng/dL", "µg/L", "ug/L", "mcg/mL", "IU/L", "U/L", "g/L",
    "mm[Hg]", "mmHg", "mm Hg", "kg/m2", "kg/m^2", "kg/m²", "beats/min", "breaths/min", "/min", "bpm", "10*3/uL",
    "10^3/uL", "10*6/uL", "10^9/L", "K/uL", "fL", "pg", "Cel", "°C", "°F", "degC", "degF", "mcg", "mg", "kg",
    "lbs", "lb", "cm", "mm", "mL", "ml", "IU", "units", "unit", "%", "g", "L",
]
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_NUMBER_RE = re.compile(
    rf"(?<![A-Za-z0-9_.\-/#])(?P<num>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\d.]\d)"
    rf"(?:\s?(?P<unit>{_UNIT_RE})(?![A-Za-z0-9]))?(?P<after>[A-Za-z]?)")
_EVIDENCE_NUMBER_RE = re.compile(r"(?<![A-Za-z0-9_])-?\d+(?:\.\d+)?")
_UNIT_ALIASES = {
    "mm[hg]": "mmhg", "mmhg": "mmhg", "/min": "/min", "bpm": "/min", "beats/min": "/min", "breaths/min": "/min",
    "cel": "c", "°c": "c", "degc": "c", "°f": "f", "degf": "f", "kg/m^2": "kg/m2", "kg/m²": "kg/m2",
    "ml/min/1.73m2": "ml/min", "ml/min/1.73 m2": "ml/min", "10^3/ul": "10*3/ul", "k/ul": "10*3/ul",
    "ug/l": "µg/l", "umol/l": "µmol/l", "lbs": "lb", "units": "u", "unit": "u", "iu": "u", "iu/l": "u/l",
}


def norm_unit(unit: str) -> str:
    u = unit.lower().replace(" ", "")
    return _UNIT_ALIASES.get(u, _UNIT_ALIASES.get(unit.lower(), u))


def _units_in(text: str) -> set[str]:
    found = set()
    for m in re.finditer(rf"(?<![A-Za-z])({_UNIT_RE})(?![A-Za-z])", text):
        found.add(norm_unit(m.group(1)))
    return found


@dataclass
class Claims:
    dates: list[str] = field(default_factory=list)
    years: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)


def extract_claims(text: str) -> Claims:
    """Dates (ISO-normalized), bare years, numbers and units written in ``text``."""
    claims = Claims()
    rest = text
    for rx, fn in _DATE_PATTERNS:
        def _take(m: re.Match) -> str:
            try:
                claims.dates.append(fn(m))
            except (KeyError, ValueError):
                return m.group(0)
            return " "
        rest = rx.sub(_take, rest)
    for m in _NUMBER_RE.finditer(rest):
        num, unit, after = m.group("num"), m.group("unit"), m.group("after")
        if after and not unit:
            continue  # 1st, 2nd, 3x, a code fragment: not a quantity
        if unit is None and re.fullmatch(r"(19|20)\d{2}", num):
            claims.years.append(num)
            continue
        claims.numbers.append(num.replace(",", ""))
        if unit:
            claims.units.append(unit)
    return claims


def _decimals(num: str) -> int:
    return len(num.split(".", 1)[1]) if "." in num else 0


def number_supported(num: str, evidence_numbers: list[float]) -> bool:
    try:
        value = float(num)
    except ValueError:
        return True
    d = _decimals(num)
    for v in evidence_numbers:
        if abs(v - value) < 1e-9 or round(v, d) == value or round(abs(v), d) == value:
            return True
    return False


@dataclass
class EvidenceView:
    """The searchable text of one or more cited evidence items."""

    text: str
    numbers: list[float]
    dates: list[str]
    units: set[str]

    @classmethod
    def of(cls, texts: list[str]) -> EvidenceView:
        blob = "\n".join(texts)
        stripped = _KEY_FIND_RE.sub(" ", blob)
        dates = extract_claims(stripped).dates + re.findall(r"\d{4}-\d{2}-\d{2}", blob)
        numbers = []
        for n in _EVIDENCE_NUMBER_RE.findall(stripped):
            try:
                numbers.append(float(n))
            except ValueError:
                pass
        return cls(text=stripped, numbers=numbers, dates=dates, units=_units_in(stripped))


def _split_keys(inner: str) -> list[str] | None:
    """The keys in one bracket group, or None when the bracket is not a citation."""
    parts = [p.strip() for p in re.split(r"[,;]|\s+and\s+", inner) if p.strip()]
    if parts and all(_KEY_ONLY_RE.match(p) for p in parts):
        return [re.sub(r"^PMID:\s+", "PMID:", p) for p in parts]
    return None


def citations_in(text: str) -> list[str]:
    out: list[str] = []
    for m in _BRACKET_RE.finditer(text):
        keys = _split_keys(m.group(1))
        if keys:
            out.extend(k for k in keys if k not in out)
    return out


def resolve_key(key: str, registry: dict[str, dict[str, Any]]) -> str | None:
    """The evidence text a citation points to, or None when the registry lacks it."""
    item = registry.get(key)
    if item is not None:
        return _item_text(item)
    if "#" in key:
        base, span = key.split("#", 1)
        try:
            s, e = (int(x) for x in span.split("-", 1))
        except ValueError:
            return None
        if e <= s:
            return None
        for k, it in registry.items():
            if k == base and it.get("text") and e <= len(it["text"]):
                return it["text"][s:e]
            if k.startswith(base + "#"):
                try:
                    a, b = (int(x) for x in k.split("#", 1)[1].split("-", 1))
                except ValueError:
                    continue
                if a <= s and e <= b:
                    return it.get("text", "")[s - a:e - a]
    return None


def _item_text(item: dict[str, Any]) -> str:
    date = str(item.get("date") or "")
    text = item.get("text", "") or ""
    if date and text.lstrip().startswith(date[:10]):
        return text.strip()       # the text already starts with its date: say it once
    return f"{date} {text}".strip()


@dataclass
class StatementCheck:
    statement: str
    supported: bool
    kept_text: str
    reason: str = ""
    citations: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def check_statement(statement: str, registry: dict[str, dict[str, Any]]) -> StatementCheck:
    keys = citations_in(statement)
    if not keys:
        return StatementCheck(statement, False, "", "no citation")
    known = {k: t for k in keys if (t := resolve_key(k, registry)) is not None}
    unknown = [k for k in keys if k not in known]
    kept = _remove_keys(statement, unknown) if unknown else statement
    if not known:
        return StatementCheck(statement, False, "", f"citation not in the evidence: {', '.join(unknown)}",
                              keys, unknown)
    view = EvidenceView.of(list(known.values()))
    claims = extract_claims(_BRACKET_RE.sub(lambda m: " " if _split_keys(m.group(1)) else m.group(0), statement))
    missing: list[str] = []
    for d in claims.dates:
        if not any(ed.startswith(d) or d.startswith(ed) and len(ed) >= 10 for ed in view.dates):
            missing.append(f"date {d}")
    for y in claims.years:
        if y not in view.text:
            missing.append(f"year {y}")
    for n in claims.numbers:
        if not number_supported(n, view.numbers):
            missing.append(f"number {n}")
    for u in claims.units:
        if norm_unit(u) not in view.units and u.lower() not in view.text.lower():
            missing.append(f"unit {u}")
    if missing:
        return StatementCheck(statement, False, "", f"not in the cited evidence: {', '.join(dict.fromkeys(missing))}",
                              keys, unknown)
    return StatementCheck(statement, True, kept, "", [k for k in keys if k in known], unknown)


def _remove_keys(text: str, keys: list[str]) -> str:
    def repl(m: re.Match) -> str:
        parts = _split_keys(m.group(1))
        if not parts:
            return m.group(0)
        left = [p for p in parts if p not in keys]
        return f"[{', '.join(left)}]" if left else ""
    return re.sub(r"\s+([.,;])", r"\1", _BRACKET_RE.sub(repl, text)).rstrip()


def _is_structure(line: str) -> bool:
    s = line.strip()
    if not s:
        return True
    if s.startswith("#") or _VERDICT_RE.match(s):
        return True
    bare = s.strip("*_ ")
    if bare.endswith(":") and len(bare) < 80 and not re.search(r"\d", bare):
        return True
    if re.fullmatch(r"[-=*_]{3,}", s):
        return True
    return False


def split_statements(line: str) -> list[str]:
    """Sentences of one line; a citation group after the full stop stays with its sentence."""
    parts = _SENT_SPLIT_RE.split(line.strip())
    out: list[str] = []
    for p in parts:
        m = re.match(r"^((?:\s*\[[^\[\]]+\])+)\s*(.*)$", p)
        if out and m and all(_split_keys(g) for g in re.findall(r"\[([^\[\]]+)\]", m.group(1))):
            out[-1] = f"{out[-1]} {m.group(1).strip()}"
            p = m.group(2)
            if not p:
                continue
        out.append(p)
    return out


@dataclass
class Verification:
    answer: str
    supported: int
    citations: list[str]
    unsupported: list[dict[str, Any]]


def verify(text: str, registry: dict[str, dict[str, Any]], reject: Any = None) -> Verification:
    """Check every statement of ``text`` against ``registry``; return the answer with unsupported
    statements removed, the keys it still cites, and the unsupported statements with reasons.
    ``reject(statement)`` may refuse a statement first (returns the reason, or None)."""
    lines_out: list[str] = []
    unsupported: list[dict[str, Any]] = []
    cited: list[str] = []
    supported = 0
    for raw in (text or "").splitlines():
        if _is_structure(raw):
            lines_out.append(raw.rstrip())
            continue
        marker_m = _LIST_MARKER_RE.match(raw)
        marker = marker_m.group(1) if marker_m else ""
        body = raw[len(marker):]
        kept: list[str] = []
        for st in split_statements(body):
            if _is_structure(st):
                kept.append(st)
                continue
            why = reject(st) if reject is not None else None
            if why:
                unsupported.append({"statement": st.strip(), "reason": why, "citations": citations_in(st)})
                continue
            chk = check_statement(st, registry)
            if chk.unknown:
                unsupported.append({"statement": st.strip(), "reason": f"citation not in the evidence: {', '.join(chk.unknown)}"
                                    + (" (removed)" if chk.supported else ""), "citations": chk.unknown})
            if chk.supported:
                supported += 1
                kept.append(chk.kept_text)
                cited.extend(k for k in chk.citations if k not in cited)
            elif not chk.unknown or chk.reason.startswith("not in the cited"):
                unsupported.append({"statement": st.strip(), "reason": chk.reason, "citations": chk.citations})
        if kept and any(not _is_structure(k) for k in kept):
            lines_out.append(marker + " ".join(k.strip() for k in kept))
    return Verification(answer=_drop_empty_sections(lines_out), supported=supported, citations=cited,
                        unsupported=unsupported)


def _drop_empty_sections(lines: list[str]) -> str:
    """Remove headings and labels with nothing under them, and runs of blank lines."""
    out: list[str] = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s and _is_structure(s) and not _VERDICT_RE.match(s):
            level = len(s) - len(s.lstrip("#")) if s.startswith("#") else 7
            has_content = False
            for nxt in lines[i + 1:]:
                n = nxt.strip()
                if not n:
                    continue
                if n.startswith("#") and (len(n) - len(n.lstrip("#"))) <= level:
                    break
                if not _is_structure(n):
                    has_content = True
                    break
            if not has_content:
                continue
        if not s and (not out or not out[-1].strip()):
            continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    # a verdict alone with nothing supported after it says nothing
    if out and all(_is_structure(l) for l in out):
        return ""
    return "\n".join(out)
