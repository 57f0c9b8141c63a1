"""``chartwise image classify|index|search``: MedSigLIP zero-shot scores and a patient's image index.

The model comes from ``--model`` or env CHARTWISE_SIGLIP_MODEL (default google/medsiglip-448); missing
weights end with one line naming the setting. Images given as files are cited ``file:<name>``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chartwise.cliutil import print_json
from chartwise.fhir.errors import InputError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="MedSigLIP hub id or local folder (env CHARTWISE_SIGLIP_MODEL; "
                   "default google/medsiglip-448)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def _index_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", default=None, help="patient id when PATH holds several")
    p.add_argument("--data-dir", default=None, help="where the index lives (env CHARTWISE_DATA_DIR; default: user data folder)")
    p.add_argument("--frames", choices=["middle", "all"], default="middle",
                   help="multi-frame DICOM: embed the middle frame (default) or up to --max-frames frames")
    p.add_argument("--max-frames", type=int, default=16)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("image", help="MedSigLIP zero-shot image scores and image search")
    isub = parser.add_subparsers(dest="image_command", metavar="ACTION")

    c = isub.add_parser("classify", help="zero-shot scores for one image (PNG, JPEG or DICOM)")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--labels", nargs="+", default=None, metavar="L", help="labels to score (default: the modality's set)")
    c.add_argument("--modality", default=None, help="chest_xray, dermatology, fundus, pathology (default: from DICOM tags, else chest_xray)")
    c.add_argument("--json", action="store_true", help='print {"image": key, "scores": {label: p}, "model": ...}')
    _common(c)
    c.set_defaults(run=run_classify)

    i = isub.add_parser("index", help="embed a patient's images (FHIR attachments, image files, DICOM) into the index")
    i.add_argument("path", metavar="PATH", help="image file, folder of images and/or FHIR files, or a FHIR source")
    i.add_argument("--json", action="store_true")
    _index_opts(i)
    _common(i)
    i.set_defaults(run=run_index)

    s = isub.add_parser("search", help="text-to-image search, or images similar to an image file (indexes PATH first)")
    s.add_argument("path", metavar="PATH")
    s.add_argument("query", metavar="QUERY", help="a description ('frontal chest film with effusion') or an image file")
    s.add_argument("--limit", type=int, default=5)
    s.add_argument("--json", action="store_true")
    _index_opts(s)
    _common(s)
    s.set_defaults(run=run_search)
    parser.set_defaults(run=lambda args: (parser.print_help(), 2)[1])


def _settings(args: argparse.Namespace):
    from chartwise.tools.siglip import SiglipSettings

    return SiglipSettings(model=args.model or "", device=args.device)


def run_classify(args: argparse.Namespace) -> int:
    from chartwise.tools.images import classify_image
    from chartwise.tools.siglip import load_siglip

    if not Path(args.file).is_file():
        raise InputError(f"{args.file}: image file not found")
    encoder = load_siglip(_settings(args))
    result = classify_image(args.file, args.labels, args.modality, encoder=encoder)
    if args.json:
        print_json(result.contract())
        return 0
    print(f"image  {result.citation}   model {result.model}   label set {result.modality or 'custom'}")
    for r in result.ranked:
        print(f"  {r.score:6.3f}  {r.label}")
    print(result.notice)
    return 0


def _build(args: argparse.Namespace):
    from chartwise.tools.image_index import ImageIndex
    from chartwise.tools.images import entries_for_path
    from chartwise.tools.siglip import load_siglip

    skipped: list[str] = []
    entries, scopes = entries_for_path(args.path, patient_id=args.patient, frames=args.frames,
                                       max_frames=args.max_frames, skipped=skipped)
    index = ImageIndex(load_siglip(_settings(args)), path=args.data_dir)
    report = index.add(entries) if entries else None
    return index, scopes, report, skipped, entries


def run_index(args: argparse.Namespace) -> int:
    index, scopes, report, skipped, entries = _build(args)
    if report is None:
        raise InputError(f"{args.path}: no images found (PNG, JPEG, DICOM files, or FHIR Media/DocumentReference/"
                         f"DiagnosticReport image attachments)")
    report.failed.extend(f"skipped {s}" for s in skipped)
    if args.json:
        print_json(report)
        return 0
    print(f"indexed {report.added} new, {report.unchanged} unchanged; {report.images} images in "
          f"{', '.join(report.scopes)} ({report.seconds:.1f}s, collection {report.collection})")
    for f in report.failed:
        print(f"  {f}", file=sys.stderr)
    return 0


def run_search(args: argparse.Namespace) -> int:
    index, scopes, report, skipped, entries = _build(args)
    if report is None:
        raise InputError(f"{args.path}: no images found to search")
    query_is_image = Path(args.query).is_file()
    if query_is_image:
        hits = index.similar(args.query, scopes, args.limit)
    else:
        hits = index.search_text(args.query, scopes, args.limit)
    if args.json:
        sys.stdout.write(json.dumps({"query": args.query, "mode": "image" if query_is_image else "text",
                                     "model": index.encoder.model_id,
                                     "results": [h.model_dump(mode="json") for h in hits]}, indent=2) + "\n")
        return 0
    for h in hits:
        extra = f"  p={h.probability:.3f}" if h.probability is not None else ""
        when = f"  {h.date}" if h.date else ""
        print(f"{h.score:7.3f}{extra}  {h.citation}{when}")
    if not hits:
        print("no images matched")
    return 0
