"""The audit log: one entry per request (time, user or client, patient, task, resource keys read and cited).

JSONL (one object per line, appended atomically) or SQLite (``.sqlite``/``.db`` suffix), at a
configurable path: ``AuditLog(path)``, else ``CHARTWISE_AUDIT_LOG``, else ``audit.jsonl`` in the
user data folder.  ``CHARTWISE_AUDIT_LOG=off`` disables it.  Entries hold keys, counts and timings,
never record content; the question is stored as a SHA-256 digest only.

    audit = AuditLog.default()
    with audit.request("ask", patient="Patient/123", user="dr-a", question=q) as req:
        req.read(["Observation/1", ...])
        ...
        req.cited(["Observation/1"])
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field


class AuditEntry(BaseModel):
    time: str
    request_id: str
    task: str
    patient: str | None = None
    user: str | None = None
    client: str | None = None
    keys_read: list[str] = Field(default_factory=list)
    keys_cited: list[str] = Field(default_factory=list)
    question_sha256: str | None = None
    backend: str | None = None
    remote: bool | None = None
    deidentified: bool | None = None
    status: str = "ok"
    error: str | None = None
    duration_ms: int | None = None


class RequestAudit:
    """Collects what one request read and cited; written when the ``with`` block ends."""

    def __init__(self, entry: AuditEntry) -> None:
        self.entry = entry

    def read(self, keys: Iterable[str]) -> None:
        seen = set(self.entry.keys_read)
        self.entry.keys_read.extend(k for k in keys if k not in seen and not seen.add(k))

    def cited(self, keys: Iterable[str]) -> None:
        seen = set(self.entry.keys_cited)
        self.entry.keys_cited.extend(k for k in keys if k not in seen and not seen.add(k))

    def set(self, **fields: object) -> None:
        for name, value in fields.items():
            setattr(self.entry, name, value)


class AuditLog:
    """Append-only audit log (JSONL or SQLite).  ``path=None`` disables writing."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        self.sqlite = bool(self.path and self.path.suffix.lower() in (".sqlite", ".sqlite3", ".db"))
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.sqlite:
                with self._connect() as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS audit (time TEXT, request_id TEXT PRIMARY KEY, task TEXT,"
                                 " patient TEXT, user TEXT, client TEXT, entry TEXT)")

    @classmethod
    def default(cls, env: dict[str, str] | None = None) -> "AuditLog":
        env = dict(os.environ if env is None else env)
        value = env.get("CHARTWISE_AUDIT_LOG")
        if value is not None and value.strip().lower() in ("off", "none", "0", "false", ""):
            return cls(None)
        if value:
            return cls(value)
        from platformdirs import user_data_dir

        return cls(Path(user_data_dir("chartwise")) / "audit.jsonl")

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        return sqlite3.connect(self.path, timeout=30)

    def write(self, entry: AuditEntry) -> AuditEntry:
        if self.path is None:
            return entry
        data = entry.model_dump(mode="json")
        with self._lock:
            if self.sqlite:
                with self._connect() as conn:
                    conn.execute("INSERT OR REPLACE INTO audit VALUES (?,?,?,?,?,?,?)",
                                 (entry.time, entry.request_id, entry.task, entry.patient, entry.user, entry.client,
                                  json.dumps(data, ensure_ascii=False)))
            else:
                line = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
        return entry

    def record(self, task: str, **fields: object) -> AuditEntry:
        """Write one entry now (for requests that are not wrapped in :meth:`request`)."""
        question = fields.pop("question", None)
        entry = AuditEntry(time=_now(), request_id=str(fields.pop("request_id", None) or uuid.uuid4()), task=task,
                           question_sha256=_digest(question), **fields)
        return self.write(entry)

    @contextmanager
    def request(self, task: str, *, patient: str | None = None, user: str | None = None, client: str | None = None,
                question: str | None = None, **fields: object) -> Iterator[RequestAudit]:
        """Audit one request; the entry is written when the block ends, with status ``error`` on an exception."""
        entry = AuditEntry(time=_now(), request_id=str(uuid.uuid4()), task=task, patient=patient,
                           user=user or os.environ.get("CHARTWISE_USER"), client=client,
                           question_sha256=_digest(question), **fields)
        req = RequestAudit(entry)
        started = time.monotonic()
        try:
            yield req
        except BaseException as err:
            entry.status = "error"
            entry.error = type(err).__name__
            raise
        finally:
            entry.duration_ms = int((time.monotonic() - started) * 1000)
            self.write(entry)

    def entries(self) -> list[AuditEntry]:
        if self.path is None or not self.path.exists():
            return []
        if self.sqlite:
            with self._connect() as conn:
                rows = conn.execute("SELECT entry FROM audit ORDER BY time, rowid").fetchall()
            return [AuditEntry.model_validate_json(r[0]) for r in rows]
        return [AuditEntry.model_validate_json(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _digest(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None
