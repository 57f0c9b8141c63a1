"""What the HTTP API, the MCP server and batch share: loaded sources, one model backend, and the
operations over them (patients, timeline, evidence, citations, agent runs).

A :class:`Workspace` is read-only over its sources: it reads server-side paths and never writes
to them. It logs no record content (ids, names, notes); errors are one-line ``ChartwiseError``\\ s.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chartwise.fhir.errors import ChartwiseError, ConfigError, InputError, SourceError

TASKS = {"ask": "question", "question": "question", "summarize": "summary", "summary": "summary",
         "literature": "literature"}


class NotFound(ChartwiseError):
    """A source, patient or cited resource that is not there (HTTP 404)."""


class Forbidden(ChartwiseError):
    """A path outside the allowed roots, or a URL where a server-side path is required (HTTP 403)."""


class Busy(ChartwiseError):
    """Too many agent runs in flight (HTTP 429)."""


@dataclass
class LoadedSource:
    id: str
    path: str
    records: Any                      # chartwise.fhir.store.RecordSet
    loaded_at: float
    seconds: float
    context: Any = None               # chartwise.agent.context.AgentContext, built on first agent use
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self) -> dict[str, Any]:
        r = self.records
        return {"id": self.id, "path": self.path, "patients": len(r.patient_keys()), "read": r.read,
                "accepted": r.accepted, "quarantined": len(r.quarantined), "seconds": round(self.seconds, 3)}


def source_id(path: str) -> str:
    return "s" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:10]


class Workspace:
    """Sources loaded by path, the backend (loaded once, lazily) and agent settings."""

    def __init__(self, *, backend: Any = None, backend_flags: dict[str, Any] | None = None,
                 settings: Any = None, corpus: str | None = None, allowed_roots: list[str] | None = None,
                 max_runs: int = 2, run_timeout_s: float = 300.0) -> None:
        self._backend = backend
        self._backend_loaded = backend is not None
        self._backend_flags = dict(backend_flags or {})
        self._backend_lock = threading.Lock()
        self.settings = settings
        self.corpus = corpus
        roots = allowed_roots if allowed_roots is not None else [
            r for r in os.environ.get("CHARTWISE_ALLOWED_ROOTS", "").split(os.pathsep) if r]
        self.allowed_roots = [Path(r).resolve() for r in roots]
        self.sources: dict[str, LoadedSource] = {}
        self.default: str | None = None
        self._load_lock = threading.Lock()
        self._runs = threading.BoundedSemaphore(max(1, max_runs))
        self.run_timeout_s = run_timeout_s  # how long a run waits for a free slot before Busy

    # -- backend ----------------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        if not self._backend_loaded:
            with self._backend_lock:
                if not self._backend_loaded:
                    from chartwise.agent.models import load_backend, resolve_config

                    flags = dict(self._backend_flags)
                    if "backend" not in flags and not os.environ.get("CHARTWISE_BACKEND"):
                        flags["backend"] = "none"
                    self._backend = load_backend(resolve_config(flags))
                    self._backend_loaded = True
        return self._backend

    @property
    def backend_name(self) -> str:
        if not self._backend_loaded:
            return str(self._backend_flags.get("backend") or os.environ.get("CHARTWISE_BACKEND") or "none")
        b = self._backend
        if b is None:
            return "none"
        return f"{getattr(b, 'name', 'backend')}:{getattr(b, 'model_id', '') or ''}".rstrip(":")

    # -- sources ----------------------------------------------------------------------------------
    def check_path(self, path: str) -> Path:
        if "://" in path:
            raise Forbidden("only server-side file paths can be loaded here, not URLs")
        p = Path(path).expanduser()
        if not p.is_absolute():
            raise InputError(f"{path}: give an absolute server-side path")
        p = p.resolve()
        if self.allowed_roots and not any(p == r or r in p.parents for r in self.allowed_roots):
            raise Forbidden(f"{path}: outside the allowed roots (CHARTWISE_ALLOWED_ROOTS)")
        if not p.exists():
            raise NotFound(f"{path}: no such file or folder on the server")
        return p

    def load(self, path: str, *, strict: bool = False, default: bool = False, check: bool = True) -> LoadedSource:
        from chartwise.fhir.store import load

        p = self.check_path(path) if check else Path(path)
        key = str(p)
        sid = source_id(key + ("#strict" if strict else ""))
        with self._load_lock:
            if sid not in self.sources:
                t0 = time.perf_counter()
                records = load(p, strict=strict)
                self.sources[sid] = LoadedSource(sid, key, records, time.time(), time.perf_counter() - t0)
            if default or self.default is None:
                self.default = sid
        return self.sources[sid]

    def add_records(self, records: Any, *, path: str | None = None, default: bool = True) -> LoadedSource:
        """Register an already-read RecordSet (tests, batch)."""
        key = path or str(records.source)
        sid = source_id(key)
        self.sources[sid] = LoadedSource(sid, key, records, time.time(), 0.0)
        if default or self.default is None:
            self.default = sid
        return self.sources[sid]

    def source(self, sid: str | None = None) -> LoadedSource:
        sid = sid or self.default
        if sid is None:
            raise NotFound("no source loaded: POST /api/sources with a server-side path first")
        if sid not in self.sources:
            raise NotFound(f"no loaded source with id {sid!r}")
        return self.sources[sid]

    def patient(self, sid: str | None, pid: str | None) -> Any:
        records = self.source(sid).records
        if pid is None:
            keys = records.patient_keys()
            if not keys:
                raise NotFound("the source holds no Patient resource")
            if len(keys) > 1:
                raise InputError(f"the source holds {len(keys)} patients: choose one by id")
            return records.patient(keys[0])
        key = pid if pid.startswith("Patient/") else f"Patient/{pid}"
        if key not in records.refs.by_key:
            raise NotFound("no patient with that id in this source")
        return records.patient(key)

    def patients(self, sid: str | None = None) -> list[Any]:
        return list(self.source(sid).records.patient_summaries().values())

    # -- deterministic views ----------------------------------------------------------------------
    def timeline(self, sid: str | None, pid: str | None) -> tuple[Any, Any]:
        from chartwise.fhir.timeline import build_timeline

        record = self.patient(sid, pid)
        return build_timeline(record), record

    def context(self, sid: str | None) -> Any:
        src = self.source(sid)
        with src.lock:
            if src.context is None:
                from chartwise.agent.context import AgentContext, AgentSettings

                settings = self.settings
                if isinstance(settings, dict):
                    settings = AgentSettings(**settings)
                src.context = AgentContext(backend=self.backend, records=src.records,
                                           settings=settings or AgentSettings(), corpus=self.corpus)
        return src.context

    def evidence(self, question: str, sid: str | None = None, pid: str | None = None,
                 budget: int = 4000, qid: str | None = None) -> dict[str, Any]:
        """The evidence pack retrieval gives a question (no model): the ``evidence --json`` shape."""
        record = self.patient(sid, pid)
        ctx = self.context(sid)
        box = ctx.toolbox(record.patient_key, False)
        items = [{"citation": i["key"], "text": i.get("text", ""), "tokens": int(i.get("tokens") or 0),
                  **({"date": i["date"]} if i.get("date") else {})}
                 for i in box.seed(question, budget)]
        return {"id": qid, "question": question, "items": items, "tokens": sum(i["tokens"] for i in items)}

    def tool_specs(self, sid: str | None = None, literature: bool = True) -> list[Any]:
        """The typed retrieval tools (``ToolSpec``: name, description, args_model) of a source."""
        ctx = self.context(sid)
        keys = self.source(sid).records.patient_keys()
        return ctx.toolbox(keys[0] if keys else None, literature).specs()

    def call_tool(self, name: str, arguments: dict[str, Any], sid: str | None = None,
                  pid: str | None = None) -> list[dict[str, Any]]:
        record = self.patient(sid, pid)
        box = self.context(sid).toolbox(record.patient_key, name == "search_literature")
        if name not in {s.name for s in box.specs()}:
            raise NotFound(f"no tool named {name!r}")
        return [dict(i) for i in box.call(name, arguments)]

    def cite(self, key: str, sid: str | None = None) -> dict[str, Any]:
        """What a citation key points at: a resource's JSON, a note span with context, or a paper."""
        from chartwise.fhir.citations import normalize_key

        norm = normalize_key(key)
        if norm is None:
            raise InputError(f"{key!r} is not a citation key (Type/id, DocumentReference/id#start-end or PMID:n)")
        if norm.startswith("PMID:"):
            from chartwise.agent.toolbox import load_corpus

            pmid = norm.split(":", 1)[1]
            paper = load_corpus(self.corpus).get(pmid)
            if paper is None:
                raise NotFound(f"PMID {pmid} is not in the literature corpus")
            return {"key": norm, "kind": "paper", "paper": {"pmid": pmid, **paper}}
        records = self.source(sid).records
        base, _, span = norm.partition("#")
        resource = records.refs.by_key.get(base)
        if resource is None:
            raise NotFound(f"{base} is not in this source")
        out: dict[str, Any] = {"key": norm, "kind": "resource", "resource": resource}
        if span:
            start, end = (int(x) for x in span.split("-"))
            owner = records.patient_of.get(base)
            text = None
            if owner:
                fact = records.patient(owner).facts_by_key.get(base)
                text = getattr(fact, "text", None)
            if text is None:
                raise NotFound(f"{base} has no decoded note text")
            end = min(end, len(text))
            out.update(kind="span", span={"start": start, "end": end, "text": text[start:end],
                                          "before": text[max(0, start - 300):start], "after": text[end:end + 300]})
        return out

    # -- agent runs -------------------------------------------------------------------------------
    def agent_events(self, task: str, question: str | None, sid: str | None = None, pid: str | None = None,
                     thread: str | None = None, *, needs_patient: bool = True) -> Iterator[dict[str, Any]]:
        """Run the graph; yield its events (names and counts), the last one ``{"type": "result"}``."""
        from chartwise.agent.api import events

        graph_task = TASKS.get(task)
        if graph_task is None:
            raise InputError(f"unknown task {task!r}: use ask, summarize or literature")
        record = None
        if needs_patient or pid is not None:
            record = self.patient(sid, pid)
        ctx = self.context(sid) if record is not None else self._bare_context()
        question = question or ("Summarize the chart." if graph_task == "summary" else "")
        if not question.strip():
            raise InputError("the question is empty")
        if not self._runs.acquire(timeout=self.run_timeout_s or 300):
            raise Busy("too many agent runs in flight; retry later")
        try:
            yield from events(question, task=graph_task, patient=record.patient_key if record is not None else None,
                              thread=thread, context=ctx)
        finally:
            self._runs.release()

    def _bare_context(self) -> Any:
        from chartwise.agent.context import AgentContext, AgentSettings

        return AgentContext(backend=self.backend, records=None, settings=AgentSettings(), corpus=self.corpus)

    def run_agent(self, task: str, question: str | None, sid: str | None = None, pid: str | None = None,
                  thread: str | None = None, *, needs_patient: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for event in self.agent_events(task, question, sid, pid, thread, needs_patient=needs_patient):
            if event.get("type") == "result":
                result = event["result"]
        return result


def one_line(err: BaseException) -> str:
    """A one-line message for an error (the ChartwiseError text, or its type for anything else)."""
    if isinstance(err, ChartwiseError):
        return str(err)
    text = " ".join(str(err).split())[:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


__all__ = ["Busy", "ConfigError", "Forbidden", "LoadedSource", "NotFound", "SourceError", "Workspace", "one_line"]
