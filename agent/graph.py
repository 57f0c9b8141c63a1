"""The LangGraph state machine.

    route -> discover -> plan -> (call_tool x N, in parallel) -> check
    check -> plan (re-plan: thin evidence or a failed tool, up to ``max_rounds``)
          -> summarize_chunk x N (evidence larger than the budget; chart summaries: period by period)
          -> answer
    summarize_chunk -> reduce -> summarize_chunk (another level while the summaries are too large) | answer
    answer -> verify -> repair (once, when statements were unsupported) -> verify -> output
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from langgraph.graph import END, START, StateGraph

from . import nodes
from .context import AgentContext
from .state import AgentInput, AgentOutput, AgentState


def build_graph(checkpointer: Any = None):
    """Compile the agent graph (``checkpointer``: a LangGraph saver, or None)."""
    g = StateGraph(AgentState, context_schema=AgentContext, input_schema=AgentInput, output_schema=AgentOutput)
    g.add_node("route", nodes.route)
    g.add_node("discover", nodes.discover)
    g.add_node("plan", nodes.plan)
    g.add_node("call_tool", nodes.call_tool)
    g.add_node("check", nodes.check)
    g.add_node("summarize_chunk", nodes.summarize_chunk)
    g.add_node("reduce", nodes.reduce_partials)
    g.add_node("answer", nodes.answer)
    g.add_node("verify", nodes.verify_node)
    g.add_node("repair", nodes.repair)
    g.add_node("output", nodes.output)
    g.add_edge(START, "route")
    g.add_edge("route", "discover")
    g.add_edge("discover", "plan")
    g.add_conditional_edges("plan", nodes.after_plan, ["call_tool", "check"])
    g.add_edge("call_tool", "check")
    g.add_conditional_edges("check", nodes.after_check, ["plan", "summarize_chunk", "answer"])
    g.add_edge("summarize_chunk", "reduce")
    g.add_conditional_edges("reduce", nodes.after_reduce, ["summarize_chunk", "answer"])
    g.add_edge("answer", "verify")
    g.add_conditional_edges("verify", nodes.after_verify, ["repair", "output"])
    g.add_edge("repair", "verify")
    g.add_edge("output", END)
    return g.compile(checkpointer=checkpointer)


def make_graph(config: Any = None):
    """Factory named in ``langgraph.json`` (``langgraph dev`` provides its own checkpointer)."""
    return build_graph()


def default_checkpoint_path() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get("CHARTWISE_CHECKPOINTS") or Path(user_data_dir("chartwise")) / "threads.sqlite")


@contextmanager
def open_checkpointer(dsn: str | None = None) -> Iterator[Any]:
    """SQLite checkpoints by default (``CHARTWISE_CHECKPOINTS`` or the user data dir); PostgreSQL
    when ``dsn`` (or ``CHARTWISE_POSTGRES_DSN``) is a ``postgres://`` URL (``chartwise[postgres]``);
    ``:memory:`` for an in-process saver."""
    dsn = dsn or os.environ.get("CHARTWISE_POSTGRES_DSN") or None
    if dsn and dsn.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as err:
            from chartwise.fhir.errors import ConfigError
            raise ConfigError("PostgreSQL checkpoints need langgraph-checkpoint-postgres: pip install 'chartwise[postgres]' "
                              "(or unset CHARTWISE_POSTGRES_DSN for SQLite)") from err
        with PostgresSaver.from_conn_string(dsn) as saver:
            saver.setup()
            yield saver
        return
    if dsn == ":memory:":
        from langgraph.checkpoint.memory import InMemorySaver
        yield InMemorySaver()
        return
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(dsn) if dsn else default_checkpoint_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()
