"""Evidence items: normalizing what tools return, rendering them as data blocks for prompts,
the chart-summary evidence taken from the deterministic timeline, and chunking for step-wise
summarization."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from .safety import data_block, sanitize_data
from .state import EvidenceItem


def estimate(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def as_item(obj: Any, source: str = "") -> EvidenceItem | None:
    """An evidence item from a tool result (pydantic model, dataclass or dict)."""
    if obj is None:
        return None
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    elif not isinstance(obj, dict):
        obj = {k: getattr(obj, k) for k in ("citation", "key", "text", "date", "tokens") if hasattr(obj, k)}
    key = obj.get("citation") or obj.get("key")
    text = obj.get("text") or obj.get("line") or ""
    if not key or not isinstance(key, str):
        return None
    date = obj.get("date")
    tokens = obj.get("tokens")
    return EvidenceItem(key=key, text=str(text), date=str(date) if date else None,
                        tokens=int(tokens) if isinstance(tokens, (int, float)) and tokens else estimate(str(text)) + 8,
                        source=source or str(obj.get("source") or obj.get("tool") or ""))


def as_items(objs: Any, source: str = "") -> list[EvidenceItem]:
    if objs is None:
        return []
    if hasattr(objs, "items") and not isinstance(objs, dict) and not callable(objs.items):
        objs = objs.items
    elif isinstance(objs, dict) and isinstance(objs.get("items"), list):
        objs = objs["items"]
    elif hasattr(objs, "model_dump") and isinstance(getattr(objs, "items", None), list):
        objs = objs.items
    if not isinstance(objs, (list, tuple)):
        objs = [objs]
    out = []
    for o in objs:
        it = as_item(o, source)
        if it is not None:
            out.append(it)
    return out


def sanitize(text: str) -> str:
    """Free text defanged for a prompt (same length: spans stay valid); see ``safety.sanitize_data``."""
    return sanitize_data(text or "")


def _line_text(item: EvidenceItem) -> str:
    date = item.get("date")
    text = " ".join((item.get("text") or "").split())
    return f"{date + ' ' if date and not text.startswith(str(date)[:10]) else ''}{text}"


def render_item(item: EvidenceItem) -> str:
    """One evidence line: ``[key] date text`` (the date once, even when the text starts with it)."""
    return f"[{item['key']}] {_line_text(item)}"


_FREE_TEXT_PREFIXES = ("DocumentReference/", "PMID:", "DiagnosticReport/", "Media/", "file:")


def is_free_text(item: EvidenceItem) -> bool:
    """Notes, report text, papers and model-written partials: text a record author (or anyone) wrote freely."""
    key = item.get("key", "")
    return ("#" in key or key.startswith(_FREE_TEXT_PREFIXES) or "\n" in (item.get("text") or "")
            or item.get("source") in ("partial", "search_notes"))


def _kind(item: EvidenceItem) -> str:
    key = item.get("key", "")
    if key.startswith("PMID:"):
        return "paper"
    if key.startswith(("DocumentReference/", "DiagnosticReport/")):
        return "note"
    if key.startswith(("Media/", "file:")):
        return "image"
    return "record"


def render_block(items: Iterable[EvidenceItem], label: str = "evidence") -> str:
    """Evidence inside the shared data blocks (``chartwise.agent.safety``), which the system prompt
    declares data, never instructions.  Coded facts share one block of ``[key] date text`` lines;
    every free-text item (note, report, paper, partial summary) gets its own block whose key is its
    citation key and whose body is its text sanitized in place (same length, so note spans stay valid)."""
    items = list(items)
    facts = [i for i in items if not is_free_text(i)]
    parts: list[str] = []
    if facts:
        parts.append(data_block("\n".join(render_item(i) for i in facts), key=re.sub(r"\W+", "-", label).strip("-") or "evidence",
                                kind="facts", title=label))
    fact_ids = {id(i) for i in facts}
    for it in items:
        if id(it) not in fact_ids:
            parts.append(data_block(it.get("text") or "", key=it["key"], kind=_kind(it),
                                    title=str(it["date"])[:10] if it.get("date") else None))
    return "\n".join(parts) if parts else data_block("(no evidence)", key="evidence", kind="facts")


def render_texts(entries: Iterable[tuple[str, str]], *, kind: str = "summary") -> str:
    """Model-written partial summaries (label, text) as data blocks for a later prompt."""
    return "\n".join(data_block(text, key=re.sub(r"[^A-Za-z0-9.\-]+", "-", label).strip("-") or "part", kind=kind,
                                 title=label) for label, text in entries)


def plan_view(items: Iterable[EvidenceItem], limit: int = 40) -> str:
    """What the planner sees of the gathered evidence: keys, dates and coded one-liners only.
    Free text (notes, papers, partials) is shown by key and date alone, so no record text that anyone
    could have written reaches the turn in which the model chooses tools."""
    lines = []
    for it in list(items)[:limit]:
        if is_free_text(it):
            lines.append(f"[{it['key']}] {it.get('date') or ''} ({_kind(it)} text withheld from planning)".replace("  ", " "))
        else:
            lines.append(f"[{it['key']}] {compact(sanitize(_line_text(it)), 80)}")
    return "\n".join(lines)


def tokens_of(items: Iterable[EvidenceItem]) -> int:
    return sum(int(i.get("tokens") or estimate(i.get("text", ""))) + 4 for i in items)


def by_date(items: Iterable[EvidenceItem]) -> list[EvidenceItem]:
    return sorted(items, key=lambda i: (i.get("date") is None, str(i.get("date") or ""), i["key"]))


def chunk(items: list[EvidenceItem], chunk_tokens: int) -> list[list[EvidenceItem]]:
    """Consecutive (date-ordered) chunks of at most ``chunk_tokens`` each: time windows."""
    chunks: list[list[EvidenceItem]] = []
    cur: list[EvidenceItem] = []
    size = 0
    for it in items:
        t = int(it.get("tokens") or estimate(it.get("text", ""))) + 4
        if cur and size + t > chunk_tokens:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(it)
        size += t
    if cur:
        chunks.append(cur)
    return chunks


def window_label(items: list[EvidenceItem]) -> str:
    days = sorted(str(i["date"])[:10] for i in items if i.get("date"))
    if not days:
        return "undated"
    return days[0] if days[0] == days[-1] else f"{days[0]}..{days[-1]}"


# -- chart summary evidence from the deterministic timeline ----------------------------------------
def _fmt(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def timeline_items(timeline: Any) -> tuple[list[EvidenceItem], list[EvidenceItem]]:
    """(overview items, dated event items) from a ``chartwise.fhir.timeline.Timeline``.

    Overview: the patient, problems, medication courses, and each lab/vital series' latest value
    with its trend. Events: every dated entry (encounters and what happened in them), for the
    period-by-period narrative.
    """
    t = timeline.model_dump(mode="json") if hasattr(timeline, "model_dump") else dict(timeline)
    overview: dict[str, EvidenceItem] = {}
    events: dict[str, EvidenceItem] = {}

    def put(reg: dict, key: str | None, text: str, date: str | None, source: str) -> None:
        if not key:
            return
        if key in reg:
            if text in reg[key]["text"]:
                return
            reg[key]["text"] += "; " + text
            reg[key]["tokens"] = estimate(reg[key]["text"]) + 8
            return
        reg[key] = EvidenceItem(key=key, text=text, date=date, tokens=estimate(text) + 8, source=source)

    p = t.get("patient") or {}
    if p.get("key"):
        bits = [f"Patient {p.get('gender') or 'unknown sex'}", f"born {p['birth_date']}" if p.get("birth_date") else "",
                f"age {p['age']}" if p.get("age") is not None else "", f"deceased {p['deceased']}" if p.get("deceased") else ""]
        rng = t.get("date_range") or [None, None]
        bits.append(f"record from {rng[0]} to {rng[1]}" if rng and rng[0] else "")
        put(overview, p["key"], ", ".join(b for b in bits if b), None, "timeline")
    for pr in t.get("problems") or []:
        text = f"Problem: {pr['label']} ({pr['status']})" + (f", onset {pr['onset']}" if pr.get("onset") else "") \
            + (f", resolved {pr['abatement']}" if pr.get("abatement") else "") \
            + (f", {pr['episodes']} episodes" if pr.get("episodes", 1) > 1 else "")
        put(overview, (pr.get("citations") or [None])[-1], text, pr.get("onset"), "timeline")
    for m in t.get("medications") or []:
        text = f"Medication: {m['label']}" + (f" {m['dosage']}" if m.get("dosage") else "") \
            + (f" ({m['status']})" if m.get("status") else "") + (f", started {m['start']}" if m.get("start") else "") \
            + (f", last ordered {m['last_order']}" if m.get("last_order") and m.get("last_order") != m.get("start") else "") \
            + (f", stopped {m['stop']}" if m.get("stop") else "") + (f", {m['orders']} orders" if m.get("orders", 1) > 1 else "")
        put(overview, (m.get("citations") or [None])[-1], text, m.get("last_order") or m.get("start"), "timeline")
    for s in [*(t.get("labs") or []), *(t.get("vitals") or [])]:
        unit = f" {s['unit']}" if s.get("unit") else ""
        latest = s["latest"]
        text = f"{s['label']}: latest {_fmt(latest['value'])}{unit} on {latest['date']}"
        if s.get("count", 1) > 1:
            text += f"; {s['count']} results, trend {s['trend']}"
        if latest.get("abnormal"):
            text += " (out of range)"
        put(overview, latest["key"], text, latest.get("date"), "timeline")
        prev = s.get("previous")
        if prev and prev.get("key") != latest.get("key"):
            put(overview, prev["key"], f"{s['label']}: previous {_fmt(prev['value'])}{unit} on {prev['date']}",
                prev.get("date"), "timeline")
    for section in ("allergies", "immunizations", "procedures", "imaging", "notes"):
        for e in t.get(section) or []:
            for key in (e.get("citations") or [])[:1]:
                put(events, key, f"{e['category']}: {e['text']}", e.get("date"), "timeline")
    for g in t.get("encounters") or []:
        if g.get("encounter"):
            put(events, g["encounter"], f"encounter: {g['title']}", g.get("date"), "timeline")
        for e in g.get("entries") or []:
            for key in (e.get("citations") or [])[:1]:
                if key in overview:
                    continue
                put(events, key, f"{e['category']}: {e['text']}", e.get("date"), "timeline")
    return list(overview.values()), by_date(events.values())


_WS = re.compile(r"\s+")


def compact(text: str, limit: int = 300) -> str:
    text = _WS.sub(" ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
