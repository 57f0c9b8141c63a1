"""Batch runs over many patients (``chartwise batch SOURCE --task ... --out DIR``).

One output file per patient, written atomically (temporary file + rename), so a file that exists
is complete: a rerun skips those patients and picks up where a killed run stopped. A failure is
recorded for its patient and the run goes on. ``DIR/report.json`` (rewritten atomically after
every patient) says what happened to each patient; it holds ids, statuses, timings and one-line
errors, never record content.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chartwise.fhir.errors import InputError
from chartwise.service import Workspace, one_line

TASKS = ("summarize", "timeline", "ask")
REPORT = "report.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(patient_id: str) -> str:
    name = _UNSAFE.sub("_", patient_id)[:120]
    return name if name.strip("._") else "patient"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class BatchOptions:
    task: str
    out: Path
    question: str | None = None
    concurrency: int = 4
    format: str = "json"             # timeline: json | md | html
    patients: list[str] | None = None
    force: bool = False


@dataclass
class PatientOutcome:
    patient: str
    status: str                      # ok | skipped | failed
    output: str | None = None
    seconds: float = 0.0
    error: str | None = None
    citations: int | None = None
    unsupported: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class BatchRun:
    ws: Workspace
    opts: BatchOptions
    source: str
    outcomes: dict[str, PatientOutcome] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _t0: float = field(default_factory=time.perf_counter)

    def output_path(self, pid: str) -> Path:
        ext = {"timeline": self.opts.format}.get(self.opts.task, "json")
        return self.opts.out / f"{safe_name(pid)}.{self.opts.task}.{ext}"

    # -- one patient --------------------------------------------------------------------------------
    def render(self, pid: str) -> tuple[str, dict[str, Any]]:
        task = self.opts.task
        if task == "timeline":
            from chartwise.timeline_render import to_html, to_json, to_markdown

            t, record = self.ws.timeline(None, pid)
            fmt = self.opts.format
            text = to_json(t) if fmt == "json" else to_html(t, record) if fmt == "html" else to_markdown(t)
            return text, {}
        result = self.ws.run_agent(task, self.opts.question, None, pid)
        doc = {"patient": pid, "task": task, "question": self.opts.question if task == "ask" else None,
               **{k: v for k, v in result.items() if k != "task"}}
        return json.dumps(doc, indent=2, ensure_ascii=False, default=str), {
            "citations": len(result.get("citations") or []), "unsupported": len(result.get("unsupported") or [])}

    def one(self, pid: str) -> PatientOutcome:
        path = self.output_path(pid)
        t0 = time.perf_counter()
        try:
            text, extra = self.render(pid)
            write_atomic(path, text)
            return PatientOutcome(pid, "ok", output=path.name, seconds=round(time.perf_counter() - t0, 3), **extra)
        except Exception as err:  # noqa: BLE001 - recorded for this patient; the batch goes on
            return PatientOutcome(pid, "failed", seconds=round(time.perf_counter() - t0, 3), error=one_line(err))

    # -- report -------------------------------------------------------------------------------------
    def report(self, *, finished: bool) -> dict[str, Any]:
        with self._lock:
            rows = [o.as_dict() for o in self.outcomes.values()]
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "skipped", "failed")}
        records = self.ws.source().records
        return {
            "source": self.source, "task": self.opts.task, "question": self.opts.question,
            "format": self.opts.format if self.opts.task == "timeline" else "json",
            "started": self.started,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds") if finished else None,
            "complete": finished, "seconds": round(time.perf_counter() - self._t0, 3),
            "concurrency": self.opts.concurrency, "backend": self.ws.backend_name,
            "patients": len(rows), **counts,
            "read": records.read, "quarantined": len(records.quarantined),
            "quarantine": [q.line() for q in records.quarantined[:50]],
            "results": rows,
        }

    def save_report(self, *, finished: bool) -> dict[str, Any]:
        rep = self.report(finished=finished)
        write_atomic(self.opts.out / REPORT, json.dumps(rep, indent=2, ensure_ascii=False))
        return rep

    def record(self, outcome: PatientOutcome) -> None:
        with self._lock:
            self.outcomes[outcome.patient] = outcome
        self.save_report(finished=False)

    # -- the run ------------------------------------------------------------------------------------
    def run(self, progress: Callable[[PatientOutcome], None] | None = None) -> dict[str, Any]:
        records = self.ws.source().records
        wanted = self.opts.patients
        pids = [k.split("/", 1)[1] for k in records.patient_keys()]
        if wanted:
            missing = [p for p in wanted if p not in set(pids)]
            pids = [p for p in pids if p in set(wanted)]
            for p in missing:
                self.outcomes[p] = PatientOutcome(p, "failed", error="no such patient in the source")
        # Patients whose own Patient resource failed validation: reported, not silently dropped.
        for q in records.quarantined:
            if q.resource_type == "Patient" and q.id and (not wanted or q.id in wanted):
                self.outcomes[q.id] = PatientOutcome(q.id, "failed", error=f"Patient resource invalid (quarantined): "
                                                                            f"{q.field + ': ' if q.field else ''}{q.reason}")
        todo = []
        for pid in pids:
            if not self.opts.force and self.output_path(pid).exists():
                self.outcomes[pid] = PatientOutcome(pid, "skipped", output=self.output_path(pid).name)
            else:
                todo.append(pid)
        for o in list(self.outcomes.values()):
            if progress:
                progress(o)
        self.save_report(finished=False)
        with ThreadPoolExecutor(max_workers=max(1, self.opts.concurrency), thread_name_prefix="batch") as pool:
            futures = {pool.submit(self.one, pid): pid for pid in todo}
            for fut in as_completed(futures):
                outcome = fut.result()
                self.record(outcome)
                if progress:
                    progress(outcome)
        return self.save_report(finished=True)


def run_batch(source: str, opts: BatchOptions, *, ws: Workspace | None = None, strict: bool = False,
              show_progress: bool | None = None) -> dict[str, Any]:
    """Run a batch; return the report (also at ``opts.out/report.json``)."""
    if opts.task not in TASKS:
        raise InputError(f"unknown task {opts.task!r}: use {', '.join(TASKS)}")
    if opts.task == "ask" and not (opts.question or "").strip():
        raise InputError("--task ask needs --question")
    ws = ws or Workspace(max_runs=opts.concurrency)
    if ws.default is None:
        ws.load(source, strict=strict, check=False)
    # A local transformers model holds one GPU: patients go through it one at a time.
    if opts.task != "timeline" and ws.backend is not None and getattr(ws.backend, "name", "") == "transformers":
        opts.concurrency = 1
    opts.out.mkdir(parents=True, exist_ok=True)
    for stale in opts.out.glob(".*.tmp"):  # left by a killed run; its patient is redone
        stale.unlink(missing_ok=True)
    run = BatchRun(ws, opts, source=source)
    records = ws.source().records
    total = len(opts.patients) if opts.patients else \
        len(records.patient_keys()) + sum(1 for q in records.quarantined if q.resource_type == "Patient" and q.id)
    show = sys.stderr.isatty() if show_progress is None else show_progress
    if not show:
        return run.run()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn(f"{opts.task}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False) as bar:
        tid = bar.add_task("batch", total=total, failed=0)
        failed = 0

        def tick(o: PatientOutcome) -> None:
            nonlocal failed
            failed += o.status == "failed"
            bar.update(tid, advance=1, failed=failed)

        return run.run(progress=tick)
