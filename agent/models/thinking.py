"""MedGemma thinking: the system instruction that turns it on and the stripper for its thoughts.

MedGemma 27B writes thoughts between ``<unused94>`` and ``<unused95>`` when told to "think silently
if needed". Thoughts never reach the user: :func:`strip_thoughts` removes them from a finished text
(an unterminated ``<unused94>`` hides everything after it), :class:`ThoughtStripper` does the same
over a stream whose chunks may split a marker anywhere.
"""
from __future__ import annotations

import re

THOUGHT_START = "<unused94>"
THOUGHT_END = "<unused95>"
THINK_INSTRUCTION = "SYSTEM INSTRUCTION: think silently if needed."

_THOUGHT_RE = re.compile(re.escape(THOUGHT_START) + r".*?(?:" + re.escape(THOUGHT_END) + r"|\Z)", re.S)


def add_think_instruction(system: str | None) -> str:
    """Prefix the thinking instruction to a system prompt (or make it the system prompt)."""
    if not system:
        return THINK_INSTRUCTION
    if THINK_INSTRUCTION in system:
        return system
    return f"{THINK_INSTRUCTION} {system}"


def split_thoughts(text: str) -> tuple[str, str]:
    """Return (visible text, thoughts). A stray ``<unused95>`` without a start is dropped too."""
    thoughts = [m.group(0) for m in _THOUGHT_RE.finditer(text)]
    visible = _THOUGHT_RE.sub("", text).replace(THOUGHT_END, "")
    inner = "\n".join(t.removeprefix(THOUGHT_START).removesuffix(THOUGHT_END) for t in thoughts)
    return visible, inner


def strip_thoughts(text: str) -> str:
    return split_thoughts(text)[0]


def _partial_marker_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


class ThoughtStripper:
    """Incremental stripper: ``feed(chunk)`` returns the visible text that is safe to emit now;
    ``flush()`` returns what was held back at the end of the stream."""

    def __init__(self) -> None:
        self._buf = ""
        self._in_thought = False
        self.thoughts: list[str] = []

    def feed(self, chunk: str) -> str:
        self._buf += chunk
        out: list[str] = []
        while True:
            if self._in_thought:
                end = self._buf.find(THOUGHT_END)
                if end < 0:
                    keep = _partial_marker_suffix(self._buf, THOUGHT_END)
                    self.thoughts.append(self._buf[: len(self._buf) - keep])
                    self._buf = self._buf[len(self._buf) - keep:] if keep else ""
                    break
                self.thoughts.append(self._buf[:end])
                self._buf = self._buf[end + len(THOUGHT_END):]
                self._in_thought = False
            else:
                start = self._buf.find(THOUGHT_START)
                if start < 0:
                    keep = max(_partial_marker_suffix(self._buf, THOUGHT_START),
                               _partial_marker_suffix(self._buf, THOUGHT_END))
                    emit = self._buf[: len(self._buf) - keep]
                    out.append(emit.replace(THOUGHT_END, ""))
                    self._buf = self._buf[len(self._buf) - keep:] if keep else ""
                    break
                out.append(self._buf[:start].replace(THOUGHT_END, ""))
                self._buf = self._buf[start + len(THOUGHT_START):]
                self._in_thought = True
        return "".join(out)

    def flush(self) -> str:
        rest, self._buf = self._buf, ""
        if self._in_thought:
            self.thoughts.append(rest)
            return ""
        return rest

    @property
    def thought_text(self) -> str:
        return "".join(self.thoughts)
