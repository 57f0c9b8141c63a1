"""A test backend that replays scripted model outputs (strings, or callables of the prompt)."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from chartwise.agent.models import Capabilities, Generation, Message, ModelBackend, StreamChunk, Usage
from chartwise.agent.models.types import as_messages

Reply = str | Callable[[str], str]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class ScriptedBackend(ModelBackend):
    name = "scripted"

    def __init__(self, replies: list[Reply] | Callable[[str], str], *, vision: bool = False,
                 max_context: int = 131072, max_output: int = 8192) -> None:
        self.replies = replies
        self.model_id = "scripted"
        self._caps = Capabilities(vision=vision, max_context=max_context, max_output=max_output)
        self.prompts: list[str] = []
        self.prompt_tokens: list[int] = []
        self.images: list[int] = []

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def count_tokens(self, text_or_messages: Any) -> int:
        if isinstance(text_or_messages, str):
            return _tokens(text_or_messages)
        return sum(_tokens(m.content) + 4 + 256 * len(m.images) for m in as_messages(text_or_messages))

    def _next(self, prompt: str) -> str:
        if callable(self.replies):
            return self.replies(prompt)
        if not self.replies:
            raise AssertionError("the script ran out of replies")
        r = self.replies.pop(0)
        return r(prompt) if callable(r) else r

    def _generate(self, messages: list[Message], *, max_new_tokens: int, temperature: float, stop: list[str]) -> Generation:
        prompt = "\n".join(m.content for m in messages)
        self.prompts.append(prompt)
        pt = self.count_tokens(messages)
        self.prompt_tokens.append(pt)
        self.images.append(sum(len(m.images) for m in messages))
        text = self._next(prompt)
        return Generation(text=text, usage=Usage(prompt_tokens=pt, completion_tokens=_tokens(text), source="estimate"),
                          model=self.model_id)

    def _stream(self, messages: list[Message], **kw: Any) -> Iterator[StreamChunk]:
        gen = self._generate(messages, **kw)
        yield StreamChunk(text=gen.text)
        yield StreamChunk(usage=gen.usage, finish_reason="stop")


BLOCK_LINE = re.compile(r"^\[([^\]]+)\] (.*)$", re.M)
DATA_BLOCK = re.compile(r"<<<DATA tag=([0-9a-f]{10}) key=(\S+) kind=([a-z_\-]+)[^\n]*>>>\n(.*?)\n<<<END DATA tag=\1>>>", re.S)


def data_blocks_in(prompt: str) -> list[tuple[str, str, str]]:
    """(key, kind, body) of every shared data block in the prompt."""
    return [(key, kind, body) for _, key, kind, body in DATA_BLOCK.findall(prompt)]


def block_items(prompt: str) -> list[tuple[str, str]]:
    """(key, text) of every evidence item in the prompt's data blocks: the ``[key] text`` lines of
    fact blocks, and the key and (one-line) text of every note / paper / image block."""
    out: list[tuple[str, str]] = []
    for key, kind, body in data_blocks_in(prompt):
        if kind == "facts":
            out.extend(BLOCK_LINE.findall(body))
        elif kind not in ("summary", "period"):
            out.append((key, " ".join(body.split())))
    return out


def echo_first(n: int = 2) -> Callable[[str], str]:
    """A reply that restates the first ``n`` evidence lines of the prompt, each with its citation."""
    def reply(prompt: str) -> str:
        items = block_items(prompt)[:n]
        if not items:  # prompts over summaries: reuse their cited sentences
            sentences = [s for _, kind, body in data_blocks_in(prompt) if kind in ("summary", "period")
                         for s in re.findall(r"[^.\n]*?\[[^\]]+\]", body)]
            return " ".join(s.strip() + "." for s in sentences[:n])
        return " ".join(f"{text.replace('[final]', '').strip()} [{key}]." for key, text in items)
    return reply
