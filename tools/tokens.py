"""Token counting for evidence budgets.

With a tokenizer (anything with ``encode(text)`` returning a sequence, e.g. a Hugging Face
tokenizer, or a callable returning a count) the count is exact for that model.  Without one the
**documented estimate** is ``ceil(characters / 3.5)``: clinical lines are dense with digits, units
and codes, which tokenize shorter than English prose (Gemma's tokenizer averages about 3.3-3.8
characters per token on rendered FHIR facts), so 3.5 errs slightly on the high side.  An evidence
item is counted as the model sees it: ``[citation] text``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

CHARS_PER_TOKEN = 3.5

Tokenizer = Any  # an object with .encode(str) -> list, or a callable str -> int


def estimate(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0


def counter(tokenizer: Tokenizer | None = None) -> Callable[[str], int]:
    if tokenizer is None:
        return estimate
    if hasattr(tokenizer, "encode"):
        def count(text: str) -> int:
            try:
                return len(tokenizer.encode(text, add_special_tokens=False))
            except TypeError:
                return len(tokenizer.encode(text))
        return count
    if callable(tokenizer):
        return lambda text: int(tokenizer(text))
    raise TypeError("tokenizer must have .encode() or be a callable returning a count")


def item_tokens(citation: str, text: str, tokenizer: Tokenizer | None = None) -> int:
    return counter(tokenizer)(f"[{citation}] {text}")
