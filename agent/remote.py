"""De-identification at the model boundary.

:class:`DeidBackend` wraps a model backend: every message is de-identified
(``chartwise.fhir.deid.Deidentifier.text``: names, identifiers, telecom, address and birth date
replaced by consistent pseudonyms, dates optionally shifted; citation keys untouched) before it
leaves, and every reply is re-identified (``reidentify``) before the graph parses, verifies or shows
it.  :func:`is_remote` says whether a backend sends text off the machine: the OpenAI-compatible and
Vertex backends do (a ``remote`` attribute on a backend overrides this).  The policy
(``DeidSettings.active(remote)``, ``CHARTWISE_DEID=auto|on|off``) is on for remote backends, opt-in
for local ones.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chartwise.agent.models import Generation, Message, ModelBackend, StreamChunk

REMOTE_BACKENDS = ("openai", "vertex")


def is_remote(backend: Any) -> bool:
    if backend is None:
        return False
    flag = getattr(backend, "remote", None)
    if isinstance(flag, bool):
        return flag
    return getattr(backend, "name", "") in REMOTE_BACKENDS


class DeidBackend(ModelBackend):
    """``inner`` seen through a :class:`~chartwise.fhir.deid.Deidentifier` (text out de-identified,
    replies re-identified)."""

    def __init__(self, inner: ModelBackend, deid: Any, record_texts: Any = ()) -> None:
        self.inner, self.deid = inner, deid
        self.name = getattr(inner, "name", "backend")
        self.model_id = getattr(inner, "model_id", "")
        # birth dates go out generalized (YYYY-01-01, or shifted); restore them in replies when that
        # value occurs nowhere else in the record (else it is ambiguous and stays as written)
        self._births: list[tuple[str, str]] = []
        texts = "\n".join(record_texts)
        for b in getattr(deid, "birth_dates", []) or []:
            try:
                ps = deid._birth_pseudonym(b)
            except Exception:  # noqa: BLE001
                continue
            if ps and ps != b and ps not in texts:
                self._births.append((ps, b))

    def reidentify(self, text: str) -> str:
        text = self.deid.reidentify(text)
        for ps, b in self._births:
            text = text.replace(ps, b)
        return text

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    def count_tokens(self, text_or_messages: Any) -> int:
        return self.inner.count_tokens(text_or_messages)

    def budget(self) -> Any:
        return self.inner.budget()

    def close(self) -> None:
        self.inner.close()

    def _out(self, messages: list[Message]) -> list[Message]:
        return [m.model_copy(update={"content": self.deid.text(m.content)}) for m in messages]

    def _generate(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                  stop: list[str]) -> Generation:
        gen = self.inner._generate(self._out(messages), max_new_tokens=max_new_tokens, temperature=temperature,
                                   stop=stop)
        return gen.model_copy(update={"text": self.reidentify(gen.text), "thoughts": None})

    def _stream(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                stop: list[str]) -> Iterator[StreamChunk]:
        # re-identification needs whole words: collect, then hand the text on in one piece
        gen = self._generate(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        yield StreamChunk(text=gen.text)
        yield StreamChunk(usage=gen.usage, finish_reason=getattr(gen, "finish_reason", None) or "stop")
