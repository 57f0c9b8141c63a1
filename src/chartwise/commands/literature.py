"""``chartwise literature QUESTION [--patient ID] [--corpus PATH] [--source PATH]``: PMIDs and chart keys."""
from __future__ import annotations

import argparse

from .ask import add_agent_arguments, run_agent


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("literature", help="a literature-grounded answer citing PMIDs")
    parser.add_argument("question", metavar="QUESTION")
    parser.add_argument("--corpus", default=None, help="PubMedQA-format JSON corpus (default: the shared PubMedQA dev set)")
    parser.add_argument("--source", dest="path", default=None, metavar="PATH",
                        help="patient record to combine with the papers (with --patient, or the first patient)")
    parser.add_argument("--strict", action="store_true", help="stop at the first invalid resource")
    add_agent_arguments(parser, images=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    needed = bool(args.path or args.patient)
    return run_agent(args, question=args.question, task="literature", source_needed=needed, corpus=args.corpus)
