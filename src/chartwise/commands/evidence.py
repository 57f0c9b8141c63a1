"""``chartwise evidence``: the evidence pack retrieval gives a question (no model involved)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chartwise.cliutil import add_path_argument, load_records
from chartwise.fhir.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evidence", help="the cited evidence pack for a question (no model)",
                              description="Retrieve the evidence pack for QUESTION (or each line of --questions FILE.jsonl).")
    add_path_argument(p)
    p.add_argument("question", nargs="?", default=None, metavar="QUESTION")
    p.add_argument("--questions", metavar="FILE.jsonl", help='one {"id", "question", "patient"?, "file"?} per line')
    p.add_argument("--patient", metavar="ID", help="patient id when PATH holds several")
    p.add_argument("--budget", type=int, default=None, help="token budget of the pack (default 1500)")
    p.add_argument("--now", metavar="YYYY-MM-DD", help="reference date for relative time (default: the record's last date)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per question)")
    p.add_argument("--index-dir", metavar="DIR", help="index data directory (default: user data dir; env CHARTWISE_INDEX_DIR)")
    p.add_argument("--chroma-host", metavar="HOST", help="use a Chroma server (env CHARTWISE_CHROMA_HOST)")
    p.add_argument("--chroma-port", type=int, metavar="PORT", help="Chroma server port (env CHARTWISE_CHROMA_PORT)")
    p.add_argument("--embedding-model", metavar="NAME_OR_PATH", help="sentence-transformers model (env CHARTWISE_EMBEDDING_MODEL)")
    p.set_defaults(run=run)


def _pack(records, question: str, patient: str | None, budget: int, now: str | None):
    from chartwise.tools import build_evidence

    return build_evidence(question, records.patient(patient), budget, now=now)


def _print(pack, as_json: bool, out=sys.stdout) -> None:
    if as_json:
        out.write(json.dumps(pack.to_json(), ensure_ascii=False) + "\n")
        return
    out.write(f"# {pack.question}\n")
    for item in pack.items:
        out.write(f"[{item.citation}] {item.text}\n")
    out.write(f"({len(pack.items)} items, {pack.tokens} tokens)\n")


def run(args: argparse.Namespace) -> int:
    from chartwise.tools import DEFAULT_BUDGET, IndexSettings, configure

    if args.budget is not None and args.budget < 1:
        raise InputError("--budget must be a positive number of tokens")
    budget = args.budget or DEFAULT_BUDGET
    configure(IndexSettings.from_env(path=Path(args.index_dir) if args.index_dir else None, host=args.chroma_host,
                                     port=args.chroma_port, model=args.embedding_model))
    if args.questions:
        return _run_batch(args, budget)
    if not args.question:
        # PATH omitted and one positional given: it is the question (the sample patient is used)
        if args.path and not Path(args.path).exists() and not args.path.startswith(("http://", "https://")):
            args.question, args.path = args.path, None
        else:
            raise InputError("give a QUESTION or --questions FILE.jsonl")
    records = load_records(args)
    pack = _pack(records, args.question, args.patient, budget, args.now)
    _print(pack, args.json)
    return 0


def _run_batch(args: argparse.Namespace, budget: int) -> int:
    qpath = Path(args.questions)
    try:
        lines = qpath.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InputError(f"{qpath}: cannot read ({err.strerror})") from err
    loaded: dict[str | None, object] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{qpath}, line {n}: not JSON ({err.msg})") from err
        if not isinstance(q, dict) or not isinstance(q.get("question"), str):
            raise InputError(f"{qpath}, line {n}: needs a \"question\" string")
        file = q.get("file")
        if file:
            fp = Path(file)
            source = str(fp if fp.is_absolute() else (qpath.parent / fp))
        else:
            source = args.path
        if source not in loaded:
            ns = argparse.Namespace(**vars(args))
            ns.path = source
            loaded[source] = load_records(ns, quiet=True)
        pack = _pack(loaded[source], q["question"], q.get("patient") or args.patient, budget, q.get("now") or args.now)
        pack.id = q.get("id", str(n))
        _print(pack, True)
        sys.stdout.flush()
    return 0
