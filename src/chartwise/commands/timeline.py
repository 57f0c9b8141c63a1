"""``chartwise timeline PATH [--patient ID] [--format md|json|html] [-o FILE]``."""
from __future__ import annotations

import argparse

from chartwise.cliutil import add_path_argument, load_records, write_output
from chartwise.fhir.timeline import build_timeline
from chartwise.timeline_render import to_html, to_json, to_markdown


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("timeline", help="the deterministic cited timeline of one patient")
    add_path_argument(parser)
    parser.add_argument("--patient", metavar="ID", help="patient id (required when the input holds several)")
    parser.add_argument("--format", choices=("md", "json", "html"), default="md", help="output format (default md)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    records = load_records(args)
    record = records.patient(args.patient)
    timeline = build_timeline(record)
    if args.format == "json":
        text = to_json(timeline)
    elif args.format == "html":
        text = to_html(timeline, record)
    else:
        text = to_markdown(timeline)
    write_output(text, args.output)
    return 0
