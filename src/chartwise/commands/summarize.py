"""``chartwise summarize PATH [--patient ID] [--backend ...]``: the cited narrative chart summary."""
from __future__ import annotations

import argparse

from chartwise.cliutil import add_path_argument

from .ask import add_agent_arguments, run_agent


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("summarize", help="cited narrative summary over the timeline")
    add_path_argument(parser)
    add_agent_arguments(parser, images=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_agent(args, question="Summarize the chart.", task="summary")
