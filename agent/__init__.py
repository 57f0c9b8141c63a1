"""chartwise.agent: the LangGraph graph, model backends, tool-call parsing, budgets, verifier.

Public API (imported lazily so ``chartwise.agent.models`` stays light)::

    from chartwise.agent import ask, summarize, literature, events, build_graph
"""
from __future__ import annotations

from typing import Any

_API = {"ask", "summarize", "literature", "events", "result_of"}
_GRAPH = {"build_graph", "make_graph", "open_checkpointer"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api
        return getattr(api, name)
    if name in _GRAPH:
        from . import graph
        return getattr(graph, name)
    if name in ("AgentSettings", "AgentContext"):
        from . import context
        return getattr(context, name)
    if name == "verify":
        from .verifier import verify
        return verify
    raise AttributeError(name)


__all__ = sorted(_API | _GRAPH | {"AgentSettings", "AgentContext", "verify"})
