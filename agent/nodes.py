"""Graph nodes: route, discover, plan, call_tool, check, summarize_chunk, answer, verify, repair, output.

Nodes read non-serializable things (backend, records, toolboxes) from the run-time context and
write plain data to the state. Streamed progress events (``{"event": ...}``) carry names and counts
only, never record text.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Send

from chartwise.agent.models import Message, ToolCall, ToolCallFailure, FinalAnswer, request_tool_call
from chartwise.agent.models.toolcalls import _balanced_objects, parse_tool_reply
from chartwise.prompts import render

from . import evidence as ev
from .guard import echo_filter
from .safety import DATA_INSTRUCTION
from .context import AgentContext, default_context
from .toolbox import IMAGE_TOOL_NAMES
from .state import RESET, AgentState, ChunkTask, EvidenceItem, ToolTask, usage_of
from .verifier import citations_in, verify

log = logging.getLogger("chartwise.agent")

_IMAGING_RE = re.compile(r"\b(x-?ray|radiograph|film|ct|mri|scan|imaging|image|ultrasound|cxr|chest film)\b", re.I)
_LIT_RE = re.compile(r"\b(evidence|literature|studies|study|trials?|papers?|pubmed|pmid|guidelines?|meta-analys\w*)\b", re.I)
_SUMMARY_RE = re.compile(r"\b(summari[sz]e|summary|overview|history of|chart)\b", re.I)
_YES_NO_RE = re.compile(r"^\s*(is|are|does|do|did|can|could|should|will|would|has|have|was|were|may)\b", re.I)


def _ctx(runtime: Runtime | None) -> AgentContext:
    ctx = getattr(runtime, "context", None) if runtime is not None else None
    if ctx is None:
        ctx = default_context()
    return ctx


def _emit(event: dict[str, Any]) -> None:
    log.debug("agent %s", " ".join(f"{k}={v}" for k, v in event.items()))  # names, keys and counts only
    try:
        get_stream_writer()(event)
    except Exception:  # noqa: BLE001 - outside a streamed run there is no writer
        pass


def _generate(ctx: AgentContext, messages: list[Message], max_new: int, images: list[Any] | None = None,
              step: str = "", patient: str | None = None) -> tuple[str, dict[str, int]]:
    prompt_tokens = ctx.count(messages)
    _emit({"event": "llm", "step": step, "prompt_tokens": prompt_tokens})
    gen = ctx.llm(patient).generate(messages, images=images or None, max_new_tokens=max_new, temperature=0.0)
    usage = usage_of(gen.usage.prompt_tokens or prompt_tokens, gen.usage.completion_tokens)
    return gen.text.strip(), usage


def system_prompt() -> str:
    """The system prompt, with the shared data-block instruction (``safety.DATA_INSTRUCTION``)."""
    return render("agent_system", data_instruction=DATA_INSTRUCTION)


def _system() -> Message:
    return Message(role="system", content=system_prompt())


def classify(question: str, has_patient: bool) -> str:
    if _SUMMARY_RE.search(question or "") and len((question or "").split()) <= 12 and not _LIT_RE.search(question):
        return "summary"
    if _LIT_RE.search(question or "") or not has_patient:
        return "literature"
    return "question"


# -- route -----------------------------------------------------------------------------------------
def route(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    req = dict(state.get("request") or {})
    question = (req.get("question") or "").strip()
    patient = req.get("patient") or state.get("patient")
    has_patient = ctx.records is not None and bool(ctx.records.patient_of) or patient is not None
    task = req.get("task") or classify(question, has_patient and ctx.records is not None)
    if task == "summary" and not question:
        question = "Summarize the chart."
    if ctx.records is not None:
        rec = ctx.patient_record(patient)
        patient = rec.id if rec is not None else patient
    # carry the evidence the last turn cited, so a follow-up can build on it
    carried = {c["key"]: state.get("evidence", {}).get(c["key"]) for c in state.get("citations") or []}
    carried = {k: v for k, v in carried.items() if v}
    notices: list[str] = []
    images: list[dict[str, Any]] = []
    image_items: dict[str, EvidenceItem] = {}
    wanted = [{"key": f"file:{Path(p).name}", "path": str(p)} for p in req.get("images") or []]
    if ctx.records is not None and patient and _IMAGING_RE.search(question):
        wanted.extend(_record_images(ctx.patient_record(patient)))
    if wanted:
        vision = ctx.backend is not None and ctx.backend.capabilities.vision
        if vision:
            for w in wanted:
                images.append(w)
                text = w.get("label") or f"image {w['key'].removeprefix('file:')} attached to the request"
                image_items[w["key"]] = EvidenceItem(key=w["key"], text=text, date=w.get("date"), tokens=260, source="image")
        else:
            why = "no model backend is configured" if ctx.backend is None else "the configured model is text-only"
            notices.append(f"Images were not used: {why} ({len(wanted)} image{'s' if len(wanted) > 1 else ''}).")
    _emit({"event": "route", "task": task, "images": len(images)})
    return {"task": task, "patient": patient, "request": {**req, "question": question, "task": task},
            "evidence": {RESET: True, **carried, **image_items}, "tool_log": [RESET], "partials": [RESET],
            "unsupported": [RESET], "notices": [RESET, *notices], "errors": [RESET], "refused": [RESET], "usage": {RESET: True},
            "plan": [], "plan_round": 0, "draft": "", "repaired": False, "images": images, "sections": [],
            "model": ctx.model_name, "verified": {}}


def _record_images(rec: Any) -> list[dict[str, Any]]:
    """Images the record carries inline (Media, DocumentReference attachments with image data)."""
    out = []
    if rec is None:
        return out
    for res in rec.resources():
        rtype = res.get("resourceType")
        atts = []
        if rtype == "Media" and isinstance(res.get("content"), dict):
            atts = [res["content"]]
        elif rtype == "DocumentReference":
            atts = [c.get("attachment") for c in res.get("content") or [] if isinstance(c, dict)]
        for a in atts:
            if isinstance(a, dict) and a.get("data") and str(a.get("contentType", "")).startswith(("image/", "application/dicom")):
                key = f"{rtype}/{res.get('id')}"
                out.append({"key": key, "resource": key, "label": f"image {a.get('title') or rtype}",
                            "date": (res.get("createdDateTime") or res.get("date") or "")[:10] or None})
                break
    return out[:4]


# -- discover --------------------------------------------------------------------------------------
def discover(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    manifest: dict[str, Any] = {}
    if ctx.records is not None and state.get("patient"):
        try:
            manifest = ctx.toolbox(state["patient"], state["task"] == "literature").manifest()
        except Exception as err:  # noqa: BLE001
            return {"manifest": {}, "errors": [f"manifest: {type(err).__name__}"]}
    _emit({"event": "discover", "categories": len(manifest.get("categories", manifest.get("resource_counts", {})) or {})})
    return {"manifest": _plain(manifest)}


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


# -- plan ------------------------------------------------------------------------------------------
def plan(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    s = ctx.settings
    task, question, patient = state["task"], state["request"]["question"], state.get("patient")
    rnd = state.get("plan_round", 0)
    update: dict[str, Any] = {"plan_round": rnd + 1, "plan": []}
    seeded: dict[str, EvidenceItem] = {}
    if rnd == 0:
        if task == "summary":
            from chartwise.fhir.timeline import build_timeline
            overview, events = ev.timeline_items(build_timeline(ctx.patient_record(patient)))
            for it in overview:
                it["source"] = "timeline:overview"
            seeded = {i["key"]: i for i in [*overview, *events]}
        else:
            box = ctx.toolbox(patient, task == "literature")
            if task == "literature":
                names = {t.name for t in box.specs()}
                if "search_literature" in names:
                    try:
                        for it in box.call("search_literature", {"query": question}):
                            seeded[it["key"]] = it
                    except Exception as err:  # noqa: BLE001
                        update["errors"] = [f"search_literature: {type(err).__name__}"]
            if patient and ctx.records is not None:
                budget = s.evidence_tokens if task == "question" else s.evidence_tokens // 2
                for it in box.seed(question, budget):
                    seeded.setdefault(it["key"], it)
        update["evidence"] = seeded
        _emit({"event": "seed", "items": len(seeded)})
    if ctx.backend is None or task == "summary" or not s.use_model_tools:
        return update
    box = ctx.toolbox(patient, task == "literature")
    specs = box.specs()
    if not (_IMAGING_RE.search(question) or state["request"].get("images")):
        specs = [sp for sp in specs if sp.name not in IMAGE_TOOL_NAMES]   # image tools: imaging requests only
    if not specs:
        return update
    have = {**(state.get("evidence") or {}), **seeded}
    failures = [f"{t['tool']} ({t.get('error') or 'no results'})" for t in state.get("tool_log") or []
                if t.get("error") or not t.get("items")]
    room = ctx.prompt_budget() - s.plan_tokens  # the tool schemas are added by request_tool_call
    limit, manifest_chars = 40, 1500
    while True:  # the planning prompt fits the budget: fewer gathered lines, a shorter manifest
        gathered = ev.plan_view(have.values(), limit=limit)  # keys and coded lines only: no note text
        prompt = render("agent_plan", task=task, question=question,
                        manifest=json.dumps(state.get("manifest") or {}, separators=(",", ":"))[:manifest_chars],
                        gathered=gathered, n_items=len(have), failures=", ".join(failures),
                        max_calls=s.max_calls_per_round)
        msgs = [_system(), Message(role="user", content=prompt)]
        if limit <= 4 and manifest_chars <= 300 or ctx.count(msgs) + _tool_overhead(ctx, specs) <= room:
            break
        limit, manifest_chars = max(4, limit // 2), max(300, manifest_chars // 2)
    _emit({"event": "llm", "step": "plan", "prompt_tokens": ctx.count(msgs)})
    result = request_tool_call(ctx.llm(patient), msgs, specs, max_new_tokens=s.plan_tokens, repair_rounds=1)
    usage: dict[str, Any] = {}
    for g in result.generations:
        u = usage_of(g.usage.prompt_tokens, g.usage.completion_tokens)
        for k, v in u.items():
            usage[k] = max(usage.get(k, 0), v) if k == "max_prompt_tokens" else usage.get(k, 0) + v
    update["usage"] = usage
    calls: list[dict[str, Any]] = []
    if isinstance(result.outcome, ToolCall):
        calls.append({"tool": result.outcome.tool, "arguments": result.outcome.arguments.model_dump(mode="json")})
    elif isinstance(result.outcome, ToolCallFailure):
        update["errors"] = [*update.get("errors", []), f"plan: {result.outcome.reason}"]
    if not isinstance(result.outcome, FinalAnswer):
        # every valid call object of the reply (an invalid first object does not hide the others)
        raw = result.generations[-1].text if result.generations else ""
        for obj in _balanced_objects(raw):
            extra = parse_tool_reply(obj, specs, allow_final=False)
            if isinstance(extra, ToolCall):
                c = {"tool": extra.tool, "arguments": extra.arguments.model_dump(mode="json")}
                if c not in calls:
                    calls.append(c)
    guard = ctx.guard(patient, task == "literature")
    accepted, refused = [], []
    for c in calls:
        why = guard.check(c, question=question, manifest=state.get("manifest"), evidence=have.values())
        if why is None:
            accepted.append(c)
        else:
            refused.append({"tool": c["tool"], "round": rnd + 1, "reason": why})
            _emit({"event": "tool_refused", "tool": c["tool"], "reason": why})
    if refused:
        update["refused"] = refused
    update["plan"] = accepted[: s.max_calls_per_round]
    _emit({"event": "plan", "round": rnd + 1, "calls": [c["tool"] for c in update["plan"]]})
    return update


def _tool_overhead(ctx: AgentContext, specs: list[Any]) -> int:
    """Tokens the tool schemas add to the planning prompt (``request_tool_call`` renders them)."""
    from .models.toolcalls import render_tools_prompt
    return ctx.count(render_tools_prompt(specs))


def after_plan(state: AgentState, runtime: Runtime) -> Any:
    calls = state.get("plan") or []
    if not calls:
        return "check"
    return [Send("call_tool", ToolTask(call=c, round=state.get("plan_round", 1), patient=state.get("patient"),
                                       task=state["task"]))
            for c in calls]


def call_tool(task: ToolTask, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    call = task["call"]
    box = ctx.toolbox(task.get("patient"), task.get("task") == "literature")
    try:
        items = box.call(call["tool"], call.get("arguments") or {})
        err = None
    except Exception as exc:  # noqa: BLE001 - a failed tool is routed on (re-plan), not fatal
        items, err = [], f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    _emit({"event": "tool", "tool": call["tool"], "items": len(items), "error": bool(err)})
    return {"evidence": {i["key"]: i for i in items},
            "tool_log": [{"tool": call["tool"], "arguments": _plain(call.get("arguments") or {}), "round": task["round"],
                          "items": len(items), "error": err}]}


# -- check: enough? --------------------------------------------------------------------------------
def check(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    return {}


def _answer_overhead(ctx: AgentContext, state: AgentState) -> int:
    q = state["request"]["question"]
    hist = state.get("history") or []
    return ctx.count(system_prompt()) + ev.estimate(q) + sum(ev.estimate(h.get("answer", "")) + 20 for h in hist[-3:]) + 200


def evidence_room(ctx: AgentContext, state: AgentState) -> int:
    """Tokens of evidence the answer prompt can hold."""
    s = ctx.settings
    return max(256, ctx.prompt_budget() - s.answer_tokens - _answer_overhead(ctx, state)
               - 260 * len(state.get("images") or []))


def after_check(state: AgentState, runtime: Runtime) -> Any:
    ctx = _ctx(runtime)
    s = ctx.settings
    task = state["task"]
    rnd = state.get("plan_round", 1)
    evidence = state.get("evidence") or {}
    log = [t for t in state.get("tool_log") or [] if t.get("round") == rnd]
    failed = any(t.get("error") for t in log)
    thin = len(evidence) < s.min_evidence
    if (ctx.backend is not None and task != "summary" and s.use_model_tools and rnd <= s.max_rounds
            and (failed or thin)):
        return "plan"
    if ctx.backend is None:
        return "answer"
    items = list(evidence.values())
    if task == "summary":
        events = [i for i in items if i.get("source") != "timeline:overview"]
        windows = ev.chunk(ev.by_date(events), min(s.window_tokens, _chunk_room(ctx, state)))
        return _sends(windows, 1, state, {i["key"]: i for i in items}) or "answer"
    if ev.tokens_of(items) > evidence_room(ctx, state):
        windows = ev.chunk(ev.by_date(items), _chunk_room(ctx, state))
        return _sends(windows, 1, state, None)
    return "answer"


def _chunk_room(ctx: AgentContext, state: AgentState) -> int:
    s = ctx.settings
    overhead = ctx.count(system_prompt()) + ev.estimate(state["request"]["question"]) + 200
    return max(200, ctx.prompt_budget() - s.summary_tokens - overhead)


def _sends(windows: list[list[EvidenceItem]], level: int, state: AgentState,
           registry: dict[str, EvidenceItem] | None) -> list[Send]:
    out = []
    for i, w in enumerate(windows):
        reg = registry if registry is not None else {x["key"]: x for x in w}
        cited = {k: reg[k] for x in w for k in ([x["key"]] if x["key"] in reg else citations_in(x.get("text", ""))) if k in reg}
        out.append(Send("summarize_chunk", ChunkTask(level=level, index=i, window=ev.window_label(w), items=w, patient=state.get("patient"),
                                                     task=state["task"], question=state["request"]["question"],
                                                     registry=cited or {x["key"]: x for x in w})))
    return out


# -- step-wise summarization (map) -----------------------------------------------------------------
def summarize_chunk(task: ChunkTask, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    s = ctx.settings
    block = ev.render_block(task["items"], label=f"window {task['window']}")
    prompt = render("agent_summarize", block=block, task=task["task"], question=task["question"], window=task["window"])
    msgs = [_system(), Message(role="user", content=prompt)]
    text, usage = _generate(ctx, msgs, s.summary_tokens, step=f"summarize L{task['level']}#{task['index']}",
                            patient=task.get("patient"))
    reg = task.get("registry") or {i["key"]: i for i in task["items"]}
    v = verify(text, reg, reject=echo_filter(reg))
    _emit({"event": "summarize", "level": task["level"], "index": task["index"], "supported": v.supported})
    partial = {"level": task["level"], "index": task["index"], "window": task["window"], "text": v.answer,
               "tokens": ev.estimate(v.answer), "unsupported": v.unsupported}
    return {"partials": [partial], "usage": usage}


def reduce_partials(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    return {}


def after_reduce(state: AgentState, runtime: Runtime) -> Any:
    ctx = _ctx(runtime)
    parts = state.get("partials") or []
    level = max((p["level"] for p in parts), default=1)
    top = sorted((p for p in parts if p["level"] == level and p.get("text")), key=lambda p: p["index"])
    total = sum(p["tokens"] + 10 for p in top)
    room = evidence_room(ctx, state) - (_overview_tokens(state) if state["task"] == "summary" else 0)
    if total > room and level < ctx.settings.max_summary_levels and len(top) > 1:
        items = [EvidenceItem(key=f"{p['window']}", text=p["text"], date=None, tokens=p["tokens"] + 10, source="partial")
                 for p in top]
        windows = ev.chunk(items, _chunk_room(ctx, state))
        if len(windows) < len(top):
            return _sends(windows, level + 1, state, state.get("evidence") or {})
    return "answer"


def _overview_tokens(state: AgentState) -> int:
    return ev.tokens_of(i for i in (state.get("evidence") or {}).values() if i.get("source") == "timeline:overview")


# -- answer ----------------------------------------------------------------------------------------
def _top_partials(state: AgentState) -> list[dict[str, Any]]:
    parts = state.get("partials") or []
    if not parts:
        return []
    level = max(p["level"] for p in parts)
    return sorted((p for p in parts if p["level"] == level and p.get("text")), key=lambda p: p["index"])


def _fit(items: list[EvidenceItem], room: int) -> list[EvidenceItem]:
    out, used = [], 0
    for it in items:
        t = int(it.get("tokens") or 0) + 4
        if used + t > room:
            continue
        out.append(it)
        used += t
    return out


def _load_images(ctx: AgentContext, state: AgentState) -> list[Any]:
    out = []
    for im in state.get("images") or []:
        if im.get("path"):
            out.append(im["path"])
        elif im.get("resource") and ctx.records is not None:
            res = ctx.patient_record(state.get("patient")).get(im["resource"]) or {}
            att = res.get("content") if res.get("resourceType") == "Media" else next(
                (c.get("attachment") for c in res.get("content") or [] if isinstance(c, dict)), None)
            if att:
                out.append(att)
    return out


def answer(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    s = ctx.settings
    task, question = state["task"], state["request"]["question"]
    evidence = state.get("evidence") or {}
    if ctx.backend is None:
        items = list(evidence.values())
        if task == "summary":
            items = [i for i in items if i.get("source") == "timeline:overview"] or items
        lines = [f"- {ev.compact(ev.render_item(i).split('] ', 1)[1], 400)} [{i['key']}]" for i in items]
        draft = "\n".join(lines)
        _emit({"event": "answer", "mode": "evidence-pack", "items": len(items)})
        return {"draft": draft}
    history = [{"question": ev.compact(h.get("question", ""), 300), "answer": ev.compact(h.get("answer", ""), 600)}
               for h in (state.get("history") or [])[-3:]]
    room = evidence_room(ctx, state)
    partials = _top_partials(state)
    images = state.get("images") or []
    if task == "summary":
        overview = _fit(ev.by_date(i for i in evidence.values() if i.get("source") == "timeline:overview"), room // 2)
        periods = ev.render_texts([(f"Period {p['window']}", p["text"]) for p in partials], kind="period") if partials else ""
        prompt = render("agent_chart_summary", overview=ev.render_block(overview, "chart overview"), periods=periods)
        max_new = s.answer_tokens
    else:
        if partials:
            block = ev.render_texts([(p["window"], p["text"]) for p in partials], kind="summary")
        else:
            items = ev.by_date(evidence.values())
            block = ev.render_block(_fit(items, room), "evidence")
        prompt = render("agent_answer", history=history, block=block, task=task, question=question,
                        has_chart=bool(state.get("patient")) and any(not k.startswith("PMID:") for k in evidence),
                        yes_no=bool(_YES_NO_RE.match(question)),
                        images=", ".join(i["key"] for i in images))
        max_new = s.answer_tokens
    msgs = [_system(), Message(role="user", content=prompt)]
    text, usage = _generate(ctx, msgs, max_new, images=_load_images(ctx, state) if images else None, step="answer",
                            patient=state.get("patient"))
    _emit({"event": "answer", "mode": "model"})
    return {"draft": text, "usage": usage}


# -- verify / repair -------------------------------------------------------------------------------
def verify_node(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    registry = state.get("evidence") or {}
    v = verify(state.get("draft") or "", registry, reject=echo_filter(registry))
    prev = state.get("verified") or {}
    cur = {"answer": v.answer, "supported": v.supported, "citations": v.citations, "unsupported": v.unsupported}
    if prev and prev.get("supported", 0) > v.supported:
        cur = {**prev, "unsupported": [*prev.get("unsupported", []),
                                       *[{**u, "reason": u["reason"] + " (repair)"} for u in v.unsupported]]}
    _emit({"event": "verify", "supported": cur["supported"], "unsupported": len(cur["unsupported"])})
    return {"verified": cur}


def after_verify(state: AgentState, runtime: Runtime) -> str:
    ctx = _ctx(runtime)
    v = state.get("verified") or {}
    if (v.get("unsupported") and ctx.backend is not None and not state.get("repaired")
            and ctx.settings.repair_rounds > 0):
        return "repair"
    return "output"


def repair(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    evidence = state.get("evidence") or {}
    room = evidence_room(ctx, state) - ev.estimate(state.get("draft", "")) - 300
    cited = {k for u in state["verified"]["unsupported"] for k in u.get("citations", [])} | set(state["verified"]["citations"])
    items = ev.by_date(evidence.values())
    items = [i for i in items if i["key"] in cited] + [i for i in items if i["key"] not in cited]
    prompt = render("agent_repair", block=ev.render_block(_fit(items, max(200, room)), "evidence"),
                    draft=state.get("draft", ""), unsupported=state["verified"]["unsupported"][:12],
                    question=state["request"]["question"])
    msgs = [_system(), Message(role="user", content=prompt)]
    text, usage = _generate(ctx, msgs, ctx.settings.answer_tokens, step="repair", patient=state.get("patient"))
    return {"draft": text, "repaired": True, "usage": usage}


# -- output ----------------------------------------------------------------------------------------
def output(state: AgentState, runtime: Runtime) -> dict[str, Any]:
    ctx = _ctx(runtime)
    task, question = state["task"], state["request"]["question"]
    v = state.get("verified") or {}
    registry = state.get("evidence") or {}
    answer_text = v.get("answer", "")
    unsupported = list(v.get("unsupported") or [])
    sections = []
    if task == "summary":
        for p in sorted((p for p in state.get("partials") or [] if p["level"] == 1), key=lambda p: p["index"]):
            unsupported.extend(p.get("unsupported") or [])
            if p.get("text"):
                sections.append({"level": 1, "index": p["index"], "window": p["window"], "text": p["text"],
                                 "tokens": p["tokens"]})
        if sections and answer_text:
            answer_text += "\n\n## By period\n" + "\n".join(f"### {p['window']}\n{p['text']}" for p in sections)
    if not v.get("supported") and not sections:
        where = "the literature corpus" if task == "literature" and not state.get("patient") else "the record"
        tools = sorted({t["tool"] for t in state.get("tool_log") or []})
        looked = ", ".join(["the evidence pack", *tools]) if tools else "the evidence pack"
        answer_text = (f"Not found in the record: I looked for \"{ev.compact(question, 200)}\" in {where} "
                       f"({looked}; {len(registry)} items) and found no statement the evidence supports.")
        if where != "the record":
            answer_text = answer_text.replace("Not found in the record", "Not found")
    keys = citations_in(answer_text)
    from .verifier import resolve_key
    citations = [{"key": k, "verified": True, "text": ev.compact(resolve_key(k, registry) or "", 300)} for k in keys]
    notices = list(state.get("notices") or [])
    if notices:
        answer_text = answer_text + "\n\n" + "\n".join(f"Note: {n}" for n in notices)
    _emit({"event": "output", "citations": len(citations), "unsupported": len(unsupported)})
    return {"answer": answer_text, "citations": citations, "unsupported": [RESET, *unsupported], "sections": sections,
            "history": [{"question": question, "answer": answer_text, "citations": keys}], "model": ctx.model_name}
