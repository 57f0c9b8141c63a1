"""FHIR date/dateTime/instant strings to sortable datetimes (partial dates allowed)."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache


@lru_cache(maxsize=65536)
def parse_fhir_datetime(text: str | None) -> datetime | None:
    """``2019``, ``2019-03``, ``2019-03-02`` or a full dateTime to a UTC-naive datetime; None if unreadable.

    Partial dates take the first instant of the period; times with an offset are converted to UTC;
    times without one are taken as written.
    """
    if not text or not isinstance(text, str):
        return None
    text = text.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1)
        if len(text) == 10:
            return datetime(int(text[:4]), int(text[5:7]), int(text[8:10]))
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value
