"""``chartwise serve [--host 127.0.0.1] [--port N] [--source PATH]...``: the HTTP API and the web viewer."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["transformers", "openai", "vertex", "none"], default=None,
                        help="model backend (default: CHARTWISE_BACKEND, else none: the evidence pack alone)")
    parser.add_argument("--model", default=None, help="hub id, local folder, or the server's model name")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (…/v1)")
    parser.add_argument("--corpus", default=None, help="PubMedQA-format JSON literature corpus")


def backend_flags(args: argparse.Namespace) -> dict:
    return {k: v for k, v in {"backend": args.backend, "model": args.model, "base_url": args.base_url}.items() if v}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="HTTP API (OpenAPI at /openapi.json) and the web chart viewer at /")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--source", action="append", default=[], metavar="PATH",
                        help="bundle file, folder or NDJSON dir to load at start (repeatable; default: the sample patient)")
    parser.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                        help="only load paths under DIR through the API (repeatable; default CHARTWISE_ALLOWED_ROOTS)")
    parser.add_argument("--max-runs", type=int, default=2, help="agent runs in flight at once (default 2)")
    add_backend_arguments(parser)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chartwise.cliutil import sample_path
    from chartwise.http_api import create_app, serve
    from chartwise.service import Workspace

    token = os.environ.get("CHARTWISE_API_TOKEN") or None
    loopback = is_loopback(args.host)
    if not loopback and token is None:
        print("chartwise: warning: serving on a non-loopback address without CHARTWISE_API_TOKEN; "
              "anyone who can reach it can read the records", file=sys.stderr)
    ws = Workspace(backend_flags=backend_flags(args), corpus=args.corpus, max_runs=args.max_runs,
                   allowed_roots=args.allow_root or None)
    for path in args.source or [str(sample_path())]:
        ws.load(path, check=False)
    if args.source:
        ws.default = next(iter(ws.sources))
    _ = ws.backend  # load the model before the first request (and fail now on a bad setting)
    app = create_app(ws, token=token, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    print(f"chartwise: serving on http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/ "
          f"(API docs at /docs, backend {ws.backend_name}{', bearer token required' if token else ''})",
          file=sys.stderr)
    serve(app, host=args.host, port=args.port)
    return 0
