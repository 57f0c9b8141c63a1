"""The Python API, mirrored by the CLI.

    from chartwise.agent import ask, summarize, literature, events
    result = ask("What was her last HbA1c?", source="patient.json", backend="none")
    result["answer"], result["citations"], result["unsupported"]
    for event in events("Any new medications?", source="patient.json", thread="t1"):
        print(event)          # {"type": "node", ...} / {"type": "tool", ...} / {"type": "result", "result": {...}}
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from .context import AgentContext, AgentSettings
from .graph import build_graph, open_checkpointer


_DEFAULT = object()


def _context(source: Any = None, *, backend: Any = _DEFAULT, settings: AgentSettings | dict | None = None,
             corpus: str | None = None, records: Any = None) -> AgentContext:
    from chartwise.agent.models import ModelBackend, load_backend, resolve_config
    from chartwise.fhir.store import RecordSet, load

    if records is None and source is not None:
        records = source if isinstance(source, RecordSet) else load(source)
    if backend is _DEFAULT or isinstance(backend, (str, dict)):
        flags = {"backend": backend} if isinstance(backend, str) else dict(backend if isinstance(backend, dict) else {})
        backend = load_backend(resolve_config(flags))
    elif backend is not None and not isinstance(backend, ModelBackend) and not hasattr(backend, "generate"):
        raise TypeError("backend must be a ModelBackend, a backend name or a settings dict")
    if isinstance(settings, dict):
        settings = AgentSettings(**settings)
    return AgentContext(backend=backend, records=records, settings=settings or AgentSettings(), corpus=corpus)


def _audit_log(audit: Any) -> Any:
    from chartwise.audit import AuditLog

    if isinstance(audit, AuditLog):
        return audit
    if audit is False:
        return AuditLog(None)
    if audit is None or audit is True:
        return AuditLog.default()
    return AuditLog(audit)


def events(question: str, source: Any = None, *, task: str | None = None, patient: str | None = None,
           images: list[str] | None = None, thread: str | None = None, backend: Any = _DEFAULT,
           settings: AgentSettings | dict | None = None, corpus: str | None = None, checkpoints: str | None = None,
           context: AgentContext | None = None, audit: Any = None, user: str | None = None,
           client: str | None = None) -> Iterator[dict[str, Any]]:
    """Run the graph and yield its events as they happen; the last event is ``{"type": "result"}``.

    ``thread`` continues a conversation (checkpoints in SQLite, or PostgreSQL via ``checkpoints`` /
    ``CHARTWISE_POSTGRES_DSN``); without it the run is not persisted.  Each run writes one audit entry
    (``audit``: an ``AuditLog``, a path, ``False`` for none; default ``AuditLog.default()``, i.e.
    ``CHARTWISE_AUDIT_LOG``): task, patient, the evidence keys read and the keys cited.  With a remote
    backend (or ``CHARTWISE_DEID=on``) prompts are de-identified and replies re-identified.
    """
    ctx = context or _context(source, backend=backend, settings=settings, corpus=corpus)
    log = _audit_log(audit)
    with log.request(task or "auto", patient=patient, user=user, client=client, question=question,
                     backend=getattr(ctx.backend, "name", None) or "none", remote=ctx.remote,
                     deidentified=ctx.deidentifying()) as req:
        yield from _events(ctx, req, question, task=task, patient=patient, images=images, thread=thread,
                           checkpoints=checkpoints)


def _events(ctx: AgentContext, req: Any, question: str, *, task: str | None, patient: str | None,
            images: list[str] | None, thread: str | None, checkpoints: str | None) -> Iterator[dict[str, Any]]:
    request = {"question": question, "task": task, "patient": patient, "images": [str(i) for i in images or []]}
    config = {"configurable": {"thread_id": thread or f"once-{uuid.uuid4().hex}"},
              "max_concurrency": ctx.settings.max_parallel, "recursion_limit": 60}

    def run(graph: Any) -> Iterator[dict[str, Any]]:
        final: dict[str, Any] = {}
        for mode, chunk in graph.stream({"request": request}, config, context=ctx, stream_mode=["updates", "custom"]):
            if mode == "custom":
                yield {"type": chunk.get("event", "event"), **{k: v for k, v in chunk.items() if k != "event"}}
            else:
                for node in chunk:
                    yield {"type": "node", "node": node}
        state = graph.get_state(config).values
        for k in ("task", "answer", "citations", "unsupported", "notices", "model", "usage", "sections", "evidence"):
            if k in state:
                final[k] = state[k]
        rec = ctx.patient_record(state.get("patient")) if ctx.records is not None and state.get("patient") else None
        req.set(task=state.get("task") or req.entry.task,
                patient=getattr(rec, "patient_key", None) or state.get("patient") or req.entry.patient)
        req.read(list((state.get("evidence") or {}).keys()))
        req.cited([c["key"] for c in state.get("citations") or []])
        yield {"type": "result", "result": result_of(final)}

    if thread:
        with open_checkpointer(checkpoints) as saver:
            yield from run(build_graph(saver))
    else:
        from langgraph.checkpoint.memory import InMemorySaver
        yield from run(build_graph(InMemorySaver()))


def result_of(state: dict[str, Any]) -> dict[str, Any]:
    """The public result: the ``ask --json`` shape plus task, notices, usage, sections, evidence, and
    ``notice`` (the safety notice: not a medical device, clinician review required)."""
    from .safety import add_notice

    usage = state.get("usage") or {}
    return add_notice({
        "answer": state.get("answer", ""),
        "citations": state.get("citations", []),
        "unsupported": state.get("unsupported", []),
        "model": state.get("model", "none"),
        "llm_calls": int(usage.get("llm_calls", 0)),
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "task": state.get("task"),
        "notices": state.get("notices", []),
        "usage": usage,
        "sections": state.get("sections", []),
        "evidence": list((state.get("evidence") or {}).values()),
    })


def _run(question: str, source: Any = None, **kw: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for e in events(question, source, **kw):
        if e["type"] == "result":
            result = e["result"]
    return result


def ask(question: str, source: Any = None, **kw: Any) -> dict[str, Any]:
    """A cited answer to a clinical question about the patient in ``source``."""
    kw.setdefault("task", "question")
    return _run(question, source, **kw)


def summarize(source: Any = None, **kw: Any) -> dict[str, Any]:
    """The cited narrative chart summary (period by period, then the whole chart)."""
    kw["task"] = "summary"
    return _run(kw.pop("question", None) or "Summarize the chart.", source, **kw)


def literature(question: str, source: Any = None, **kw: Any) -> dict[str, Any]:
    """A literature-grounded answer citing PMIDs (and chart keys when a patient is given)."""
    kw["task"] = "literature"
    return _run(question, source, **kw)
