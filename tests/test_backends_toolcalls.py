"""The Gemma tool-call protocol: rendering, a lenient parser, validation, one repair round."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field

from chartwise.agent.models import (FinalAnswer, Generation, ToolCall, ToolCallFailure, ToolSpec, Usage,
                                    parse_tool_reply, render_tools_prompt, request_tool_call)
from chartwise.agent.models.base import ModelBackend
from chartwise.agent.models.types import Capabilities, Message, StreamChunk


class SearchArgs(BaseModel):
    query: str = Field(description="free-text query over the patient's notes")
    limit: int = Field(default=5, ge=1, le=50)


class LabArgs(BaseModel):
    code: str = Field(description="LOINC code")
    since: str | None = None


def search_notes(args: SearchArgs) -> list[str]:
    """Search the patient's clinical notes; returns cited note spans."""
    return []


def lab_trend(args: LabArgs) -> list[str]:
    """Values of one lab over time, oldest first."""
    return []


TOOLS = [ToolSpec.from_callable(search_notes), ToolSpec.from_callable(lab_trend)]

OK_SEARCH = ("search_notes", {"query": "chest pain", "limit": 5})
OK_LAB = ("lab_trend", {"code": "4548-4", "since": None})

CASES = [
    # well-formed
    ('{"tool": "search_notes", "arguments": {"query": "chest pain"}}', OK_SEARCH),
    ('{"tool":"lab_trend","arguments":{"code":"4548-4"}}', OK_LAB),
    ('```json\n{"tool": "search_notes", "arguments": {"query": "chest pain", "limit": 5}}\n```', OK_SEARCH),
    ('```\n{"tool": "lab_trend", "arguments": {"code": "4548-4"}}\n```', OK_LAB),
    # prose around it
    ('I will search the notes.\n{"tool": "search_notes", "arguments": {"query": "chest pain"}}\nThat should help.',
     OK_SEARCH),
    ('Sure! ```json\n{"tool": "lab_trend", "arguments": {"code": "4548-4"}}\n``` Let me know.', OK_LAB),
    # thinking tokens, including braces inside the thought and an unterminated one after the call
    ('<unused94>thought\nI need {the notes}<unused95>{"tool": "search_notes", "arguments": {"query": "chest pain"}}',
     OK_SEARCH),
    ('{"tool": "lab_trend", "arguments": {"code": "4548-4"}}<unused94>maybe also {"tool": "search_notes"}', OK_LAB),
    ('<unused94>{"tool": "search_notes", "arguments": {"query": "wrong"}}<unused95>\n'
     '{"tool": "lab_trend", "arguments": {"code": "4548-4"}}<end_of_turn>', OK_LAB),
    # single quotes, Python literals, trailing commas, smart quotes
    ("{'tool': 'search_notes', 'arguments': {'query': 'chest pain', 'limit': 5}}", OK_SEARCH),
    ("{'tool': 'lab_trend', 'arguments': {'code': '4548-4', 'since': None}}", OK_LAB),
    ('{"tool": "search_notes", "arguments": {"query": "chest pain",},}', OK_SEARCH),
    ('{\u201ctool\u201d: \u201csearch_notes\u201d, \u201carguments\u201d: {\u201cquery\u201d: \u201cchest pain\u201d}}',
     OK_SEARCH),
    ("{'tool': 'lab_trend', 'arguments': {'code': '4548-4', 'since': null,}}", OK_LAB),
    # key variants
    ('{"name": "search_notes", "args": {"query": "chest pain"}}', OK_SEARCH),
    ('{"tool_name": "lab_trend", "parameters": {"code": "4548-4"}}', OK_LAB),
    ('{"function": {"name": "search_notes", "arguments": "{\\"query\\": \\"chest pain\\"}"}}', OK_SEARCH),
    ('{"tool_call": {"name": "lab_trend", "arguments": {"code": "4548-4"}}}', OK_LAB),
    ('{"tool": "search_notes", "query": "chest pain"}', OK_SEARCH),
    # coercion by the pydantic model
    ('{"tool": "search_notes", "arguments": {"query": "chest pain", "limit": "5"}}', OK_SEARCH),
    # unterminated object (model hit max tokens right at the end)
    ('{"tool": "lab_trend", "arguments": {"code": "4548-4"', OK_LAB),
]

FINALS = [
    ('{"final": "HbA1c was 7.9% [Observation/abc]."}', "HbA1c was 7.9% [Observation/abc].", True),
    ("```json\n{'final_answer': 'No data.'}\n```", "No data.", True),
    ("<unused94>done thinking<unused95>The patient's last HbA1c was 7.9% [Observation/abc].",
     "The patient's last HbA1c was 7.9% [Observation/abc].", False),
]

FAILURES = [
    ('{"tool": "delete_chart", "arguments": {}}', "unknown_tool"),
    ('{"tool": "search_notes", "arguments": {"limit": 3}}', "invalid_arguments"),
    ('{"tool": "search_notes", "arguments": {"query": "x", "limit": 500}}', "invalid_arguments"),
    ('{"tool": "search_notes", "arguments": ["chest pain"]}', "invalid_arguments"),
    ('{"tool": search_notes(query=chest pain)}', "bad_json"),
    ('{"answer_type": "unknown"}', "bad_json"),
    ("", "no_json"),
    ("<unused94>thinking that never ends {\"tool\": \"search_notes\"", "no_json"),
]


@pytest.mark.parametrize("raw,expected", CASES)
def test_parses_tool_calls(raw, expected):
    out = parse_tool_reply(raw, TOOLS)
    assert isinstance(out, ToolCall), out
    assert (out.tool, out.arguments.model_dump()) == expected


@pytest.mark.parametrize("raw,text,explicit", FINALS)
def test_parses_final_answers(raw, text, explicit):
    out = parse_tool_reply(raw, TOOLS)
    assert isinstance(out, FinalAnswer) and out.text == text and out.explicit is explicit


@pytest.mark.parametrize("raw,reason", FAILURES)
def test_failures_are_typed(raw, reason):
    out = parse_tool_reply(raw, TOOLS)
    assert isinstance(out, ToolCallFailure) and out.reason == reason, out
    assert out.error and "\n" not in out.error


def test_final_not_allowed():
    out = parse_tool_reply('{"final": "x"}', TOOLS, allow_final=False)
    assert isinstance(out, ToolCallFailure) and out.reason == "final_not_allowed"
    assert parse_tool_reply("plain", TOOLS, allow_final=False).reason == "no_json"


def test_render_lists_tools_and_protocol():
    text = render_tools_prompt(TOOLS)
    assert "### search_notes" in text and "Search the patient's clinical notes" in text
    assert '"query"' in text and "LOINC code" in text and '"title"' not in text
    assert '{"final": "<your answer>"}' in text
    assert "final" not in render_tools_prompt(TOOLS, allow_final=False).split("Example")[0].split("nothing else.")[1]


class ScriptedBackend(ModelBackend):
    """Replies from a script; records the messages it was given."""

    name = "scripted"

    def __init__(self, replies: list[str]):
        self.replies = list(replies)
        self.seen: list[list[Message]] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vision=False, max_context=8192, max_output=512)

    def _generate(self, messages, *, max_new_tokens, temperature, stop):
        self.seen.append(messages)
        return Generation(text=self.replies.pop(0), usage=Usage(prompt_tokens=10, completion_tokens=5))

    def _stream(self, messages, *, max_new_tokens, temperature, stop) -> Iterator[StreamChunk]:
        raise NotImplementedError

    def count_tokens(self, text_or_messages):
        return 1


def test_repair_round_fixes_a_bad_call():
    backend = ScriptedBackend(['{"tool": "search_notes", "arguments": {"limit": 2}}',
                               '{"tool": "search_notes", "arguments": {"query": "dyspnea", "limit": 2}}'])
    result = request_tool_call(backend, [{"role": "user", "content": "Any dyspnea?"}], TOOLS)
    assert isinstance(result.outcome, ToolCall) and result.repaired
    assert result.outcome.arguments == SearchArgs(query="dyspnea", limit=2)
    assert result.usage.prompt_tokens == 20 and len(result.generations) == 2
    second = backend.seen[1]
    assert second[0].role == "system" and "### search_notes" in second[0].content
    assert second[-2].role == "assistant" and second[-1].role == "user"
    assert "query: Field required" in second[-1].content


def test_repair_round_then_typed_failure():
    backend = ScriptedBackend(['{"tool": "nope"}', '{"tool": "still_nope"}'])
    result = request_tool_call(backend, "q", TOOLS)
    assert isinstance(result.outcome, ToolCallFailure) and result.outcome.reason == "unknown_tool"
    assert result.outcome.tool == "still_nope" and len(result.generations) == 2 and not result.repaired


def test_first_reply_ok_needs_no_repair():
    backend = ScriptedBackend(['{"final": "done"}'])
    result = request_tool_call(backend, [{"role": "system", "content": "You are Chartwise."},
                                         {"role": "user", "content": "q"}], TOOLS)
    assert isinstance(result.outcome, FinalAnswer) and len(backend.seen) == 1
    assert backend.seen[0][0].content.startswith("You are Chartwise.")
