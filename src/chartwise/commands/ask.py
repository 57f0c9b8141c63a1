"""``chartwise ask PATH QUESTION [--backend ...] [--model M] [--image FILE]... [--thread ID] [--json]``."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from chartwise.cliutil import add_path_argument, load_records, print_json

JSON_KEYS = ("answer", "citations", "unsupported", "model", "llm_calls", "prompt_tokens")
# ``--json`` prints JSON_KEYS (DESIGN.md) plus "notice" (the safety notice; an additive change)


def add_agent_arguments(parser: argparse.ArgumentParser, *, images: bool = True, thread: bool = True) -> None:
    parser.add_argument("--backend", choices=["transformers", "openai", "vertex", "none"], default=None,
                        help="model backend (default: CHARTWISE_BACKEND, else none: the evidence pack alone)")
    parser.add_argument("--model", default=None, help="hub id, local folder, or the server's model name")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (…/v1)")
    parser.add_argument("--patient", default=None, help="patient id (default: the first patient)")
    parser.add_argument("--budget", type=int, default=None, help="prompt token budget (default: the model's context)")
    if images:
        parser.add_argument("--image", action="append", default=[], metavar="FILE", help="image for the model (repeatable)")
    if thread:
        parser.add_argument("--thread", default=None, help="conversation id: continue a multi-turn thread (SQLite checkpoints)")
    parser.add_argument("--json", action="store_true", help=f"print JSON: {{{', '.join(JSON_KEYS)}, notice}}")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ask", help="a cited answer to a clinical question")
    add_path_argument(parser)
    parser.add_argument("question", metavar="QUESTION")
    add_agent_arguments(parser)
    parser.set_defaults(run=run)


def _backend(args: argparse.Namespace) -> Any:
    import os

    from chartwise.agent.models import load_backend, resolve_config

    flags = {k: v for k, v in {"backend": args.backend, "model": args.model, "base_url": args.base_url}.items() if v}
    configured = os.environ.get("CHARTWISE_BACKEND") or os.environ.get("CHARTWISE_CONFIG") or os.path.isfile("chartwise.toml")
    if "backend" not in flags and not configured:
        flags["backend"] = "none"  # no backend configured: the evidence pack alone
    return load_backend(resolve_config(flags))


def progress(event: dict[str, Any]) -> str | None:
    """One progress line for stderr (names and counts only, never record text)."""
    t = event.get("type")
    if t == "route":
        return f"task: {event.get('task')}" + (f", {event['images']} image(s)" if event.get("images") else "")
    if t == "seed":
        return f"evidence pack: {event.get('items')} items"
    if t == "plan":
        calls = event.get("calls") or []
        return f"plan round {event.get('round')}: " + (", ".join(calls) if calls else "enough evidence")
    if t == "tool":
        return f"  tool {event.get('tool')}: {event.get('items')} items" + (" (failed)" if event.get("error") else "")
    if t == "llm":
        return f"  model call ({event.get('step')}, {event.get('prompt_tokens')} prompt tokens)"
    if t == "summarize":
        return f"  summarized window L{event.get('level')}#{event.get('index')}"
    if t == "tool_refused":
        return f"  refused tool call {event.get('tool')}: {event.get('reason')}"
    if t == "verify":
        return f"verify: {event.get('supported')} supported, {event.get('unsupported')} unsupported"
    return None


def run_agent(args: argparse.Namespace, *, question: str, task: str, source_needed: bool = True,
              corpus: str | None = None) -> int:
    from chartwise.agent.api import _context, events
    from chartwise.agent.safety import add_notice, with_notice

    records = load_records(args) if source_needed else None
    settings = {"context_tokens": args.budget} if getattr(args, "budget", None) else None
    ctx = _context(None, backend=_backend(args), settings=settings, corpus=corpus, records=records)
    show = not args.quiet
    result: dict[str, Any] = {}
    for event in events(question, task=task, patient=args.patient, images=getattr(args, "image", None),
                        thread=getattr(args, "thread", None), context=ctx):
        if event["type"] == "result":
            result = event["result"]
        elif show and (line := progress(event)):
            print(line, file=sys.stderr)
    if args.json:
        print_json(add_notice({k: result.get(k) for k in JSON_KEYS}))
        return 0
    lines = [result.get("answer", "")]
    if result.get("citations"):
        lines.append("\nCitations:")
        lines.extend(f"  [{c['key']}] {c['text']}" for c in result["citations"])
    if result.get("unsupported"):
        lines.append(f"\nRemoved as unsupported ({len(result['unsupported'])}):")
        lines.extend(f"  - {u['statement'][:160]} ({u['reason']})" for u in result["unsupported"][:20])
    print(with_notice("\n".join(lines), fmt="text"), end="")
    if show:
        print(f"model {result.get('model')}: {result.get('llm_calls')} calls, {result.get('prompt_tokens')} prompt tokens",
              file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return run_agent(args, question=args.question, task="question")
