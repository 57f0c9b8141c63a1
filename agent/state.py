"""The agent's state: plain data only (dicts, lists, strings, numbers) so every checkpointer can
serialize it, with narrow input and output schemas.

Per-turn fields are reset by ``route`` at the start of each turn of a thread; ``history`` and the
evidence cited in earlier turns carry over so a follow-up question can build on them.
"""
from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

Task = Literal["summary", "question", "literature"]

RESET = "__reset__"


class Request(TypedDict, total=False):
    task: Task | None          # None: route decides from the question
    question: str
    patient: str | None        # patient id (None: the only / first patient of the source)
    images: list[str]          # image files attached to the request


class EvidenceItem(TypedDict, total=False):
    key: str                   # citation key: Type/id, DocumentReference/id#s-e, PMID:n, file:name
    text: str
    date: str | None
    tokens: int
    source: str                # which tool / step produced it


class ToolCallRecord(TypedDict, total=False):
    tool: str
    arguments: dict[str, Any]
    round: int
    items: int
    error: str | None


class Partial(TypedDict, total=False):
    level: int
    index: int
    window: str                # "2012-02-10..2015-01-18" or a group name
    text: str                  # verified partial summary with its citations inline
    tokens: int
    unsupported: list[dict[str, Any]]


class Unsupported(TypedDict, total=False):
    statement: str
    reason: str
    citations: list[str]


class Citation(TypedDict):
    key: str
    verified: bool
    text: str


class Usage(TypedDict, total=False):
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    max_prompt_tokens: int


# -- reducers -------------------------------------------------------------------------------------
def merge_evidence(old: dict[str, EvidenceItem] | None, new: dict[str, Any] | None) -> dict[str, EvidenceItem]:
    """Merge registries by key; an update holding ``RESET`` replaces the registry."""
    new = dict(new or {})
    if new.pop(RESET, False):
        return new
    out = dict(old or {})
    for key, item in new.items():
        out.setdefault(key, item)
    return out


def append_or_reset(old: list | None, new: list | None) -> list:
    """Append lists; an update whose first element is ``RESET`` replaces the list with the rest."""
    new = list(new or [])
    if new and new[0] == RESET:
        return new[1:]
    return [*(old or []), *new]


def add_usage(old: Usage | None, new: dict[str, Any] | None) -> Usage:
    new = dict(new or {})
    base: dict[str, int] = {} if new.pop(RESET, False) else dict(old or {})
    for k, v in new.items():
        if k == "max_prompt_tokens":
            base[k] = max(base.get(k, 0), int(v))
        else:
            base[k] = base.get(k, 0) + int(v)
    return base  # type: ignore[return-value]


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"llm_calls": 1, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "max_prompt_tokens": prompt_tokens}


# -- schemas --------------------------------------------------------------------------------------
class AgentInput(TypedDict, total=False):
    request: Request


class AgentOutput(TypedDict, total=False):
    task: Task
    answer: str
    citations: list[Citation]
    unsupported: list[Unsupported]
    notices: list[str]
    model: str
    usage: Usage
    evidence: dict[str, EvidenceItem]
    sections: list[Partial]


class AgentState(TypedDict, total=False):
    request: Request
    task: Task
    patient: str | None
    manifest: dict[str, Any]
    plan: list[dict[str, Any]]
    plan_round: int
    evidence: Annotated[dict[str, EvidenceItem], merge_evidence]
    tool_log: Annotated[list[ToolCallRecord], append_or_reset]
    refused: Annotated[list[dict[str, Any]], append_or_reset]   # planned calls the plan guard refused
    partials: Annotated[list[Partial], append_or_reset]
    summary_level: int
    draft: str
    repaired: bool
    answer: str
    citations: list[Citation]
    unsupported: Annotated[list[Unsupported], append_or_reset]
    sections: list[Partial]
    verified: dict[str, Any]          # {"answer", "supported", "citations", "unsupported"}
    notices: Annotated[list[str], append_or_reset]
    images: list[dict[str, Any]]     # images the model sees this turn: {"key", "path"}
    usage: Annotated[Usage, add_usage]
    errors: Annotated[list[str], append_or_reset]
    history: Annotated[list[dict[str, Any]], operator.add]   # [{"question", "answer", "citations"}]
    model: str


# what ``call_tool`` receives through Send
class ToolTask(TypedDict):
    call: dict[str, Any]
    round: int
    patient: str | None
    task: Task


class ChunkTask(TypedDict):
    level: int
    index: int
    window: str
    items: list[EvidenceItem]
    task: Task
    question: str
    registry: dict[str, EvidenceItem]
    patient: str | None
