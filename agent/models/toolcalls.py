"""Tool calls for models without native function calling (Gemma / MedGemma).

Protocol (documented in README.md, "Model backends"):

* The system prompt lists every tool: name, docstring, JSON schema of its pydantic arguments model
  (``prompts/tool_call.j2``).
* The model replies with ONE JSON object: ``{"tool": NAME, "arguments": {...}}`` to call a tool, or
  ``{"final": TEXT}`` to answer. A reply with no JSON object at all is taken as a final answer too.
* :func:`parse_tool_reply` is lenient about form: code fences, thoughts (``<unused94>…``), prose around
  the object, single quotes / Python literals (``True``, ``None``), trailing commas, smart quotes, and
  key variants (``name``/``tool_name``/``function`` and ``args``/``parameters``/``input``;
  OpenAI-style ``{"function": {"name", "arguments": "<json>"}}``).
* It is strict about content: the tool must exist and the arguments must validate against its model.
* :func:`request_tool_call` runs the model, and on a failure shows it the error once
  (``prompts/tool_repair.j2``); a second failure returns a :class:`ToolCallFailure` for the graph
  to route on (e.g. fall back to the evidence pack).
"""
from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chartwise.prompts import render

from .thinking import strip_thoughts
from .types import Generation, Message, Usage, as_messages

_TOOL_KEYS = ("tool", "name", "tool_name", "function", "function_name", "action")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "tool_input", "action_input")
_FINAL_KEYS = ("final", "final_answer", "answer")
_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON|python|py|tool_code|tool_call)?[ \t]*\n?(.*?)```", re.S)
_SPECIAL_RE = re.compile(r"<(?:end_of_turn|start_of_turn|eos|bos|pad)>")


class ToolSpec(BaseModel):
    """A tool as the model sees it: a name, what it does, and its pydantic arguments model."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    description: str
    args_model: type[BaseModel]

    @classmethod
    def from_callable(cls, fn: Callable[..., Any], *, name: str | None = None) -> ToolSpec:
        """From a function whose single parameter is annotated with a pydantic model; the
        docstring becomes the description."""
        hints = inspect.get_annotations(fn, eval_str=True)
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        model = hints.get(params[0].name) if params else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{fn.__name__}: the first parameter must be annotated with a pydantic model")
        doc = inspect.cleandoc(fn.__doc__ or "").strip() or name or fn.__name__
        return cls(name=name or fn.__name__, description=doc, args_model=model)

    def schema(self) -> dict[str, Any]:
        return _compact_schema(self.args_model.model_json_schema())

    def example(self) -> dict[str, Any]:
        ex: dict[str, Any] = {}
        for key, prop in self.schema().get("properties", {}).items():
            if key not in self.schema().get("required", []):
                continue
            t = prop.get("type")
            ex[key] = {"integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}.get(t, "...")
        return ex


def _compact_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _compact_schema(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_compact_schema(v) for v in schema]
    return schema


class ToolCall(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: Literal["tool_call"] = "tool_call"
    tool: str
    arguments: BaseModel
    raw: str = ""


class FinalAnswer(BaseModel):
    kind: Literal["final"] = "final"
    text: str
    raw: str = ""
    explicit: bool = True  # False when the reply had no JSON object and was taken as the answer


FailureReason = Literal["no_json", "bad_json", "unknown_tool", "invalid_arguments", "final_not_allowed"]


class ToolCallFailure(BaseModel):
    """The model did not produce a usable call. ``reason`` lets the graph choose a route."""

    kind: Literal["failure"] = "failure"
    reason: FailureReason
    error: str
    raw: str = ""
    tool: str | None = None


ToolReply = ToolCall | FinalAnswer | ToolCallFailure


class ToolCallResult(BaseModel):
    """What :func:`request_tool_call` returns: the outcome plus every generation it took."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    outcome: ToolCall | FinalAnswer | ToolCallFailure
    generations: list[Generation] = Field(default_factory=list)
    repaired: bool = False

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=sum(g.usage.prompt_tokens for g in self.generations),
                     completion_tokens=sum(g.usage.completion_tokens for g in self.generations))


# -- rendering ----------------------------------------------------------------------------------
def render_tools_prompt(tools: Sequence[ToolSpec], *, allow_final: bool = True) -> str:
    if not tools:
        raise ValueError("render_tools_prompt needs at least one tool")
    views = [{"name": t.name, "description": t.description,
              "schema_json": json.dumps(t.schema(), separators=(",", ":")),
              "example_json": json.dumps(t.example())} for t in tools]
    return render("tool_call", tools=views, allow_final=allow_final)


# -- parsing ------------------------------------------------------------------------------------
def _balanced_objects(text: str) -> list[str]:
    """Top-level ``{...}`` spans, skipping braces inside single- or double-quoted strings."""
    out: list[str] = []
    depth, start, quote, escape = 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            # an apostrophe inside prose (depth 0) must not open a string
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start:i + 1])
    if depth > 0 and start >= 0:  # unterminated object: try to close it
        out.append(text[start:] + "}" * depth)
    return out


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _pythonize(s: str) -> str:
    """Map JSON literals to Python ones outside strings so ast.literal_eval accepts mixed input."""
    out, quote, escape, i = [], "", False, 0
    while i < len(s):
        ch = s[i]
        if quote:
            out.append(ch)
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "\"'":
            quote = ch
            out.append(ch)
            i += 1
            continue
        m = re.match(r"(true|false|null)\b", s[i:])
        if m and (i == 0 or not (s[i - 1].isalnum() or s[i - 1] == "_")):
            out.append({"true": "True", "false": "False", "null": "None"}[m.group(1)])
            i += len(m.group(1))
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _loads_lenient(candidate: str) -> Any:
    text = candidate.strip().replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    attempts = [text, _TRAILING_COMMA.sub(r"\1", text)]
    for a in attempts:
        try:
            return json.loads(a)
        except json.JSONDecodeError:
            pass
    for a in attempts:
        try:
            return ast.literal_eval(_pythonize(a))
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    raise ValueError("not JSON")


def _first(d: dict[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    for k in keys:
        if k in d:
            return k, d[k]
    return None, None


def _normalize(obj: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """Return ("tool", name, args) or ("final", text, None) or None when the dict is neither."""
    fk, fv = _first(obj, _FINAL_KEYS)
    if fk is not None and not any(k in obj for k in ("tool", "tool_name")):
        return "final", fv, None
    tk, tv = _first(obj, _TOOL_KEYS)
    if tk is None:
        for wrapper in ("tool_call", "call", "function_call"):
            if isinstance(obj.get(wrapper), dict):
                return _normalize(obj[wrapper])
        return None
    if isinstance(tv, dict):  # {"function": {"name": ..., "arguments": ...}}
        inner = _normalize(tv)
        if inner is not None:
            return inner
        return None
    _, args = _first(obj, _ARG_KEYS)
    if args is None:
        args = {k: v for k, v in obj.items() if k != tk}
    if isinstance(args, str):
        try:
            args = _loads_lenient(args)
        except ValueError:
            pass
    return "tool", tv, args


def _candidates(text: str) -> list[str]:
    cands: list[str] = []
    for block in _FENCE_RE.findall(text):
        cands.extend(_balanced_objects(block) or [block])
    cands.extend(_balanced_objects(text))
    seen: set[str] = set()
    return [c for c in cands if not (c in seen or seen.add(c))]


def parse_tool_reply(raw: str, tools: Sequence[ToolSpec], *, allow_final: bool = True) -> ToolReply:
    """Parse a model reply into a validated :class:`ToolCall`, a :class:`FinalAnswer` or a
    :class:`ToolCallFailure`."""
    by_name = {t.name: t for t in tools}
    text = _SPECIAL_RE.sub("", strip_thoughts(raw)).strip()
    cands = _candidates(text)
    parsed_any = False
    for cand in cands:
        try:
            obj = _loads_lenient(cand)
        except ValueError:
            continue
        parsed_any = True
        if not isinstance(obj, dict):
            continue
        norm = _normalize(obj)
        if norm is None:
            continue
        kind, a, b = norm
        if kind == "final":
            if not allow_final:
                return ToolCallFailure(reason="final_not_allowed", raw=raw,
                                       error="a tool call is required here; a final answer is not accepted yet")
            answer = a if isinstance(a, str) else json.dumps(a, ensure_ascii=False)
            return FinalAnswer(text=answer.strip(), raw=raw)
        name = str(a).strip()
        spec = by_name.get(name)
        if spec is None:
            return ToolCallFailure(reason="unknown_tool", tool=name, raw=raw,
                                   error=f"there is no tool named {name!r}; use one of: {', '.join(by_name)}")
        args = b if b is not None else {}
        if not isinstance(args, dict):
            return ToolCallFailure(reason="invalid_arguments", tool=name, raw=raw,
                                   error=f"the arguments of {name!r} must be a JSON object, not {type(args).__name__}")
        try:
            model = spec.args_model.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(arguments)'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            return ToolCallFailure(reason="invalid_arguments", tool=name, raw=raw,
                                   error=f"invalid arguments for {name!r}: {problems}")
        return ToolCall(tool=name, arguments=model, raw=raw)
    if cands:
        if parsed_any:
            return ToolCallFailure(reason="bad_json", raw=raw,
                                   error='the JSON object has neither "tool" and "arguments" nor "final"')
        return ToolCallFailure(reason="bad_json", raw=raw, error="the reply contains a JSON object that does not parse")
    if allow_final and text:
        return FinalAnswer(text=text, raw=raw, explicit=False)
    return ToolCallFailure(reason="no_json", raw=raw, error="the reply contains no JSON object")


# -- one call with one repair round -------------------------------------------------------------
def with_tools_prompt(messages: list[Message], tools: Sequence[ToolSpec], *, allow_final: bool = True) -> list[Message]:
    """Append the tool instructions to the system message (or add one)."""
    block = render_tools_prompt(tools, allow_final=allow_final)
    if messages and messages[0].role == "system":
        return [messages[0].model_copy(update={"content": f"{messages[0].content}\n\n{block}"}), *messages[1:]]
    return [Message(role="system", content=block), *messages]


def request_tool_call(
    backend: Any,
    messages: str | Sequence[Message] | Sequence[dict[str, Any]],
    tools: Sequence[ToolSpec],
    *,
    images: Sequence[Any] | None = None,
    allow_final: bool = True,
    repair_rounds: int = 1,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
) -> ToolCallResult:
    """Ask ``backend`` for a tool call (or a final answer), repairing at most ``repair_rounds`` times."""
    msgs = with_tools_prompt(as_messages(messages), tools, allow_final=allow_final)
    gens: list[Generation] = []
    outcome: ToolReply
    for round_ in range(repair_rounds + 1):
        gen = backend.generate(msgs, images=images if round_ == 0 else None, max_new_tokens=max_new_tokens,
                               temperature=temperature)
        gens.append(gen)
        outcome = parse_tool_reply(gen.text, tools, allow_final=allow_final)
        if not isinstance(outcome, ToolCallFailure):
            return ToolCallResult(outcome=outcome, generations=gens, repaired=round_ > 0)
        if round_ < repair_rounds:
            repair = render("tool_repair", error=outcome.error, tool_names=[t.name for t in tools],
                            allow_final=allow_final)
            msgs = [*msgs, Message(role="assistant", content=gen.text or "(empty reply)"),
                    Message(role="user", content=repair)]
    return ToolCallResult(outcome=outcome, generations=gens, repaired=False)
