"""``chartwise mcp [--transport stdio|http] [--source PATH]...``: the MCP server."""
from __future__ import annotations

import argparse
import os
import sys

from .serve import add_backend_arguments, backend_flags, is_loopback


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("mcp", help="MCP server: retrieval tools, ask/summarize/timeline, patients as resources")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                        help="stdio (default) or streamable HTTP at http://HOST:PORT/mcp")
    parser.add_argument("--host", default="127.0.0.1", help="address for --transport http (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port for --transport http (default 8765)")
    parser.add_argument("--source", action="append", default=[], metavar="PATH",
                        help="bundle file, folder or NDJSON dir to load at start (repeatable; default: the sample patient)")
    parser.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                        help="load_source only reads paths under DIR (repeatable; default CHARTWISE_ALLOWED_ROOTS)")
    add_backend_arguments(parser)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chartwise.cliutil import sample_path
    from chartwise.mcp_server import run as serve
    from chartwise.service import Workspace

    token = os.environ.get("CHARTWISE_API_TOKEN") or None
    if args.transport == "http" and not is_loopback(args.host) and token is None:
        print("chartwise: warning: MCP over HTTP on a non-loopback address without CHARTWISE_API_TOKEN",
              file=sys.stderr)
    ws = Workspace(backend_flags=backend_flags(args), corpus=args.corpus, allowed_roots=args.allow_root or None)
    for path in args.source or [str(sample_path())]:
        ws.load(path, check=False)
    if args.source:
        ws.default = next(iter(ws.sources))
    _ = ws.backend
    if args.transport == "http":
        print(f"chartwise: MCP (streamable HTTP) on http://{args.host}:{args.port}/mcp", file=sys.stderr)
    serve(ws, transport=args.transport, host=args.host, port=args.port, token=token)
    return 0
