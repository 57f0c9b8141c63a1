"""Fakes for the interface tests: a scripted in-process model backend and a scripted
OpenAI-compatible chat server on 127.0.0.1. Both answer from the evidence block in the prompt, so
answers cite real keys; one uncited sentence is added so the verifier has something to remove."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

from chartwise.agent.models.base import ModelBackend
from chartwise.agent.models.types import Capabilities, Generation, StreamChunk, Usage
from _loopback import LoopbackServer, QuietHandler

UNSUPPORTED = "Blood pressure will certainly normalize next year."
_LINE = re.compile(r"^\[([A-Z][A-Za-z]+/[A-Za-z0-9\-.#]+|PMID:\d+)\]\s+(\d{4}-\d{2}-\d{2})?", re.M)


def scripted_reply(prompt: str) -> str:
    """Plan prompts get 'enough evidence'; answer prompts a cited answer from the first evidence lines."""
    if '"tool"' in prompt and '"final"' in prompt:
        return '{"final": "enough evidence"}'
    hits = _LINE.findall(prompt)[:2]  # evidence lines: "[Type/id] date text"

    if not hits:
        return "Not found in the record."
    parts = []
    for i, (key, date) in enumerate(hits):
        when = f" on {date}" if date else ""
        parts.append(f"{'One' if i == 0 else 'Another'} relevant entry is recorded{when} [{key}].")
    return " ".join(parts) + " " + UNSUPPORTED


class ScriptedBackend(ModelBackend):
    name = "scripted"
    model_id = "scripted-test"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vision=False, max_context=16384, max_output=512)

    def _generate(self, messages, *, max_new_tokens, temperature, stop) -> Generation:
        prompt = messages[-1].content if isinstance(messages[-1].content, str) else str(messages[-1].content)
        self.prompts.append(prompt)
        return Generation(text=scripted_reply(prompt), usage=Usage(prompt_tokens=len(prompt) // 4, completion_tokens=30))

    def _stream(self, messages, *, max_new_tokens, temperature, stop) -> Iterator[StreamChunk]:
        gen = self._generate(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        yield StreamChunk(text=gen.text, usage=gen.usage, finish_reason="stop")

    def count_tokens(self, text_or_messages) -> int:
        if isinstance(text_or_messages, str):
            return len(text_or_messages) // 4
        return sum(len(str(getattr(m, "content", m))) // 4 for m in text_or_messages)


class ChatServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 answering with :func:`scripted_reply`."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.requests = 0
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests += 1
                if outer.delay:
                    time.sleep(outer.delay)
                msgs = body.get("messages") or [{}]
                content = msgs[-1].get("content", "")
                if isinstance(content, list):
                    content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                reply = {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": scripted_reply(content)}}],
                         "usage": {"prompt_tokens": len(content) // 4, "completion_tokens": 30,
                                   "total_tokens": len(content) // 4 + 30}}
                self.send_json(reply)

        self._server = LoopbackServer(Handler)
        self.base_url = self._server.base_url

    def close(self) -> None:
        self._server.close()
