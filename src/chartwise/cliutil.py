"""Helpers shared by CLI commands: the PATH argument, loading with progress, output."""
from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from chartwise.fhir.store import RecordSet, load
from chartwise.fhir.sources import FileSource

SAMPLE_NAME = "sample_patient.json"


def sample_path() -> Path:
    """The small sample patient shipped inside the package (see data/SAMPLE-LICENSE.txt)."""
    return Path(str(resources.files("chartwise").joinpath("data", SAMPLE_NAME)))


def add_path_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=None, metavar="PATH",
                        help="bundle file, folder of bundles or NDJSON, or FHIR server URL (default: the bundled sample patient)")
    parser.add_argument("--strict", action="store_true", help="stop at the first invalid resource instead of quarantining it")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def load_records(args: argparse.Namespace, *, quiet: bool = False) -> RecordSet:
    """Load PATH (or the sample) with a progress bar on stderr when it is a terminal."""
    path = args.path or str(sample_path())
    if path.startswith(("http://", "https://")):
        return load(path, strict=args.strict)
    source = FileSource(Path(path))
    show = not quiet and sys.stderr.isatty() and source.total_bytes() > 2_000_000
    if not show:
        return load(source, strict=args.strict)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("reading {task.fields[label]}"), BarColumn(), TextColumn("{task.completed} resources"),
                  TimeElapsedColumn(), transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("read", total=None, label=Path(path).name)
        return load(source, strict=args.strict, progress=lambda n: progress.advance(task, n))


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def print_json(obj: object) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_output(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
