"""``chartwise inspect PATH [--json]``: the manifest of a read."""
from __future__ import annotations

import argparse

from chartwise.cliutil import add_path_argument, load_records, print_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("inspect", help="patients, resource counts, date range, quarantined resources")
    add_path_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument("--all", action="store_true", help="list every quarantined resource and dangling reference")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    records = load_records(args)
    manifest = records.manifest(max_dangling=len(records.dangling) if args.all else 20)
    if args.json:
        print_json(manifest)
        return 0
    m = manifest
    print(f"source      {m.source}")
    print(f"resources   read {m.read} = accepted {m.accepted} + quarantined {m.quarantined}"
          + (f" ({m.duplicates} duplicate ids merged)" if m.duplicates else ""))
    print(f"date range  {m.date_range[0] or '?'} .. {m.date_range[1] or '?'}")
    print(f"patients    {len(m.patients)}")
    for p in m.patients[:50]:
        dead = " deceased" if p.deceased else ""
        print(f"  {p.id}  {p.gender or '?'} born {p.birth_date or '?'}{dead}  {p.resources} resources  {p.first or '?'}..{p.last or '?'}")
    if len(m.patients) > 50:
        print(f"  ... {len(m.patients) - 50} more (use --json)")
    print("counts")
    for rtype, n in m.resource_counts.items():
        print(f"  {rtype:<28}{n:>7}")
    if m.quarantine:
        print(f"quarantined {m.quarantined}")
        shown = m.quarantine if args.all else m.quarantine[:20]
        for q in shown:
            print(f"  {q.line()}")
        if len(m.quarantine) > len(shown):
            print(f"  ... {len(m.quarantine) - len(shown)} more (use --all or --json)")
    if m.dangling_references:
        print(f"dangling references {m.dangling_references}")
        for d in m.dangling_examples:
            print(f"  {d.source} {d.path} -> {d.reference}")
    return 0
