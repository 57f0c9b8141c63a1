"""Model backends: one interface over transformers (MedGemma) and OpenAI-compatible servers.

    from chartwise.agent.models import BackendConfig, resolve_config, load_backend
    backend = load_backend(resolve_config({"backend": "openai", "base_url": "http://host:8000/v1"}))
    gen = backend.generate([Message(role="user", content="...")], images=["cxr.png"], max_new_tokens=512)

Heavy modules (torch, transformers, httpx clients) load only when a backend is built.
"""
from __future__ import annotations

from .base import ModelBackend, collect
from .budget import BudgetPlan, TokenBudget, estimate_tokens
from .config import BackendConfig, resolve_config
from .registry import load_backend
from .thinking import ThoughtStripper, strip_thoughts
from .toolcalls import (FinalAnswer, ToolCall, ToolCallFailure, ToolCallResult, ToolSpec, parse_tool_reply,
                        render_tools_prompt, request_tool_call)
from .types import Capabilities, Generation, ImageAttachment, Message, StreamChunk, Usage

__all__ = [
    "BackendConfig", "BudgetPlan", "Capabilities", "FinalAnswer", "Generation", "ImageAttachment", "Message",
    "ModelBackend", "StreamChunk", "ThoughtStripper", "TokenBudget", "ToolCall", "ToolCallFailure", "ToolCallResult",
    "ToolSpec", "Usage", "collect", "estimate_tokens", "load_backend", "parse_tool_reply", "render_tools_prompt",
    "request_tool_call", "resolve_config", "strip_thoughts",
]
