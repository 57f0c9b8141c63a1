"""``chartwise batch SOURCE --task summarize|timeline|ask --out DIR [--question Q] [--concurrency N]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .serve import add_backend_arguments, backend_flags


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("batch", help="run a task over every patient of a source; resumable; one file per patient")
    parser.add_argument("path", metavar="SOURCE", help="bundle file, folder of bundles, or Bulk NDJSON folder")
    parser.add_argument("--task", choices=["summarize", "timeline", "ask"], required=True)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (one file per patient + report.json)")
    parser.add_argument("--question", default=None, help="the question for --task ask")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="patients in flight at once (default 4; 1 with a local transformers model)")
    parser.add_argument("--format", choices=["json", "md", "html"], default="json", help="timeline output format (default json)")
    parser.add_argument("--patient", action="append", default=None, metavar="ID", help="only these patients (repeatable)")
    parser.add_argument("--force", action="store_true", help="redo patients whose output already exists")
    parser.add_argument("--strict", action="store_true", help="stop at the first invalid resource instead of quarantining it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(parser)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chartwise.batch import BatchOptions, run_batch
    from chartwise.fhir.errors import InputError
    from chartwise.service import Workspace

    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    opts = BatchOptions(task=args.task, out=Path(args.out), question=args.question, concurrency=args.concurrency,
                        format=args.format, patients=args.patient, force=args.force)
    ws = Workspace(backend_flags=backend_flags(args), corpus=args.corpus, max_runs=args.concurrency)
    report = run_batch(args.path, opts, ws=ws, strict=args.strict,
                       show_progress=False if args.no_progress else None)
    print(f"batch {args.task}: {report['ok']} done, {report['skipped']} skipped (already done), "
          f"{report['failed']} failed of {report['patients']} patients in {report['seconds']:.1f}s; "
          f"report {Path(args.out) / 'report.json'}", file=sys.stderr)
    return 1 if report["failed"] else 0
