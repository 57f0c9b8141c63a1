"""No PHI in logs: a scan helper, a log capture for tests, and a redacting logging filter.

Chartwise logs resource keys, counts and timings only.  :func:`scan_for_phi` checks text (captured
logs, stderr) for a patient's identifying values (:func:`chartwise.fhir.deid.phi_values`);
:class:`PhiRedactingFilter` is defence in depth for deployments that log third-party libraries at
DEBUG: it replaces known identifying values in every record it sees.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from chartwise.fhir.deid import phi_values

__all__ = ["phi_values", "scan_for_phi", "capture_logs", "PhiRedactingFilter"]


def _patterns(values: Iterable[str]) -> list[tuple[str, re.Pattern]]:
    out = []
    for value in values:
        value = value.strip()
        if len(value) < 3:
            continue
        digits = re.sub(r"\D", "", value)
        if len(digits) >= 7 and len(digits) >= len(value) - 4:  # phone-like: match by digits
            pattern = r"\D{0,2}".join(re.escape(d) for d in digits)
        else:
            pattern = r"\s+".join(re.escape(p) for p in value.split())
        out.append((value, re.compile(r"(?<![\w])" + pattern + r"(?![\w])", re.I)))
    return out


def scan_for_phi(text: str, values: Iterable[str]) -> list[str]:
    """The identifying values found in ``text`` (case-insensitive; phone numbers by digits)."""
    return [value for value, pat in _patterns(values) if pat.search(text)]


@contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[list[str]]:
    """Capture every log line (all loggers, formatted with arguments) while the block runs."""
    lines: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                lines.append(self.format(record))
            except Exception:  # noqa: BLE001 - a broken record must not break the run
                lines.append(str(record.msg))

    handler = _Handler(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


class PhiRedactingFilter(logging.Filter):
    """Replaces known identifying values in log records with ``[REDACTED]``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        super().__init__()
        self._patterns = _patterns(values)

    def add(self, values: Iterable[str]) -> None:
        self._patterns.extend(_patterns(values))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._patterns:
            return True
        message = record.getMessage()
        redacted = message
        for _value, pat in self._patterns:
            redacted = pat.sub("[REDACTED]", redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
