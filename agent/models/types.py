"""Typed values that cross the model-backend boundary: messages, images, usage, generations."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chartwise.tools.image_loading import ImageAttachment  # noqa: F401  (re-exported)

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]




# What a caller may hand over as an image: a file path (PNG, JPEG, DICOM), raw bytes, a PIL image,
# a FHIR Attachment (model or dict). ``chartwise.tools.image_loading.load_image`` turns each into RGB.
ImageInput = Any


class Message(BaseModel):
    """One chat turn. ``images`` belong to this turn and are placed before its text."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    role: Role
    content: str
    images: list[Any] = Field(default_factory=list)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # "server" when the numbers came from the serving side, "tokenizer" when counted with the model's
    # own tokenizer, "estimate" when estimated (chars / 4).
    source: Literal["tokenizer", "server", "estimate"] = "tokenizer"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Generation(BaseModel):
    """A finished generation; ``text`` has thoughts and special tokens removed."""

    text: str
    usage: Usage
    finish_reason: FinishReason = "stop"
    model: str = ""
    thoughts: str | None = None


class StreamChunk(BaseModel):
    """One piece of a streamed generation. The last chunk has ``usage`` and ``finish_reason`` set
    (its ``text`` may be empty)."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: FinishReason | None = None

    @property
    def is_final(self) -> bool:
        return self.usage is not None


class Capabilities(BaseModel):
    vision: bool
    max_context: int
    max_output: int
    native_tool_calls: bool = False
    thinking: bool = False


def as_messages(messages: str | list[Message] | list[dict[str, Any]]) -> list[Message]:
    """Accept a bare prompt string, ``Message`` objects or ``{"role", "content"}`` dicts."""
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    out: list[Message] = []
    for m in messages:
        out.append(m if isinstance(m, Message) else Message.model_validate(m))
    return out


def attach_images(messages: list[Message], images: list[Any] | None) -> list[Message]:
    """Return a copy of ``messages`` with ``images`` added to the last user turn."""
    if not images:
        return messages
    msgs = [m.model_copy() for m in messages]
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].role == "user":
            msgs[i] = msgs[i].model_copy(update={"images": [*msgs[i].images, *images]})
            return msgs
    msgs.append(Message(role="user", content="", images=list(images)))
    return msgs


def is_path_like(value: Any) -> bool:
    return isinstance(value, (str, Path)) and not str(value).startswith("data:")
