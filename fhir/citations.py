"""Citation keys: ``Type/id``, ``DocumentReference/id#start-end``, ``PMID:n`` — parsing and checks.

Lab names carry brackets too (``Albumin [Mass/volume] in Serum``), so a bracketed ``A/b`` is a
citation only when ``A`` is a FHIR R4 resource type.
"""
from __future__ import annotations

import re
from functools import lru_cache

_BRACKETED = re.compile(r"\[([^\[\]\n]{3,200})\]")
_KEY = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-\.]{1,64})(?:#(?P<start>\d+)-(?P<end>\d+))?$")
_PMID = re.compile(r"^PMID:\s?(?P<pmid>\d{1,9})$")


@lru_cache(maxsize=512)
def is_resource_type(name: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(name)
    except (ValueError, KeyError, AttributeError, ImportError):
        return False
    return True


def normalize_key(text: str) -> str | None:
    """The citation key in ``text`` (one key, no brackets), or None when it is not one."""
    text = text.strip()
    m = _PMID.match(text)
    if m:
        return f"PMID:{m.group('pmid')}"
    m = _KEY.match(text)
    if m and is_resource_type(m.group("type")):
        if m.group("start") is not None and int(m.group("start")) > int(m.group("end")):
            return None
        return text
    return None


def find_citations(text: str) -> list[str]:
    """Every citation key written in square brackets in ``text``, in order (``[A][B]`` and ``[A, B]``)."""
    keys = []
    for match in _BRACKETED.finditer(text):
        for part in re.split(r"[,;]\s*", match.group(1)):
            key = normalize_key(part)
            if key:
                keys.append(key)
    return keys


def base_key(key: str) -> str:
    """``DocumentReference/x#10-20`` -> ``DocumentReference/x``."""
    return key.split("#", 1)[0]
