"""The ``chartwise`` command line.  Each command lives in ``chartwise.commands.<name>``.

User errors (:class:`~chartwise.fhir.errors.ChartwiseError`) end with one line on stderr and a
non-zero exit code; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from chartwise import __version__
from chartwise.fhir.errors import ChartwiseError

#: Command modules under chartwise.commands, in the order ``--help`` lists them.
COMMANDS = ["inspect", "timeline", "evidence", "ask", "summarize", "literature", "image", "serve", "mcp", "batch", "eval"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chartwise",
        description="Cited timelines, chart QA and literature answers over FHIR R4 records.",
    )
    parser.add_argument("--version", action="version", version=f"chartwise {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"chartwise.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"chartwise.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ChartwiseError as err:
        if debug:
            raise
        print(f"chartwise: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("chartwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks for users
        if debug:
            raise
        print(f"chartwise: internal error: {type(err).__name__}: {' '.join(str(err).split())[:300]} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
