"""The one interface the agent uses, whatever serves MedGemma."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, overload

from .budget import TokenBudget
from .thinking import ThoughtStripper
from .types import Capabilities, Generation, Message, StreamChunk, Usage

Messages = str | Sequence[Message] | Sequence[dict[str, Any]]


class ModelBackend(ABC):
    """A chat model. Implementations: ``TransformersBackend`` (local MedGemma) and
    ``OpenAIBackend`` (vLLM, TGI, llama.cpp, Ollama, a Vertex AI endpoint).

    ``generate(..., stream=False)`` returns a :class:`Generation`; with ``stream=True`` it returns an
    iterator of :class:`StreamChunk` whose last item carries ``usage`` and ``finish_reason``.
    Thoughts (``<unused94>…<unused95>``) are removed from every output, streamed or not.
    """

    name: str = "backend"
    model_id: str = ""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @overload
    def generate(self, messages: Messages, images: Sequence[Any] | None = ..., *, max_new_tokens: int | None = ...,
                 temperature: float = ..., stop: Sequence[str] | None = ..., stream: Literal[False] = ...) -> Generation: ...

    @overload
    def generate(self, messages: Messages, images: Sequence[Any] | None = ..., *, max_new_tokens: int | None = ...,
                 temperature: float = ..., stop: Sequence[str] | None = ..., stream: Literal[True]) -> Iterator[StreamChunk]: ...

    def generate(
        self,
        messages: Messages,
        images: Sequence[Any] | None = None,
        *,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        stream: bool = False,
    ) -> Generation | Iterator[StreamChunk]:
        """Generate a reply. ``images`` are added to the last user message; ``temperature=0`` is greedy;
        ``max_new_tokens=None`` means the capability's ``max_output``."""
        from .types import as_messages, attach_images

        msgs = attach_images(as_messages(messages), list(images) if images else None)
        limit = max_new_tokens if max_new_tokens is not None else self.capabilities.max_output
        stops = [s for s in (stop or []) if s]
        if stream:
            return self._stream(msgs, max_new_tokens=limit, temperature=temperature, stop=stops)
        return self._generate(msgs, max_new_tokens=limit, temperature=temperature, stop=stops)

    @abstractmethod
    def _generate(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                  stop: list[str]) -> Generation: ...

    @abstractmethod
    def _stream(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                stop: list[str]) -> Iterator[StreamChunk]: ...

    @abstractmethod
    def count_tokens(self, text_or_messages: Messages) -> int:
        """Tokens of a text, or of a chat (chat template included, images counted as their soft tokens)."""

    def budget(self) -> TokenBudget:
        caps = self.capabilities
        return TokenBudget(max_context=caps.max_context, max_output=caps.max_output)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP connections, GPU memory)."""


def collect(chunks: Iterable[StreamChunk], model: str = "") -> Generation:
    """Join a stream back into one :class:`Generation`."""
    parts: list[str] = []
    usage, finish = Usage(), "stop"
    for c in chunks:
        parts.append(c.text)
        if c.usage is not None:
            usage = c.usage
        if c.finish_reason is not None:
            finish = c.finish_reason
    return Generation(text="".join(parts), usage=usage, finish_reason=finish, model=model)  # type: ignore[arg-type]


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; return (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class VisibleText:
    """What a stream shows the user: thoughts stripped, leading blanks dropped, cut at the first stop string.

    Both streaming backends feed their raw pieces here, so streamed and non-streamed outputs agree.
    """

    def __init__(self, stop: Sequence[str] | None = None) -> None:
        self._stripper = ThoughtStripper()
        self._stop = list(stop or [])
        self.emitted = ""
        self.stopped = False
        self._lead = True

    def feed(self, piece: str) -> str:
        """The newly visible text for a raw ``piece`` ("" once a stop string was reached)."""
        if self.stopped:
            return ""
        visible = self._stripper.feed(piece)
        if self._lead:
            visible = visible.lstrip()
            self._lead = not visible
        if self._stop:
            cut, self.stopped = truncate_at_stop(self.emitted + visible, self._stop)
            visible = cut[len(self.emitted):]
        self.emitted += visible
        return visible

    def tail(self) -> str:
        """What the thought stripper still held back, at the end of the stream."""
        return "" if self.stopped else self._stripper.flush().rstrip()

