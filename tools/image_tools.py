"""Image tools for the agent's planner: typed arguments (pydantic), a docstring that becomes the
tool's description, and evidence results (``items`` with ``citation`` and ``text``) that the verifier
treats like any other evidence.

Each tool takes ``(args, patient)`` where ``patient`` is a ``chartwise.fhir.store.PatientRecord``;
``settings`` (a :class:`~chartwise.tools.siglip.SiglipSettings`) and ``path`` (the index data dir)
are optional keywords the toolbox may bind. The patient's images are indexed on first use
(incrementally: unchanged images are not embedded again).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from chartwise.fhir.errors import InputError

from .image_index import ImageHit, ImageIndex
from .images import NOTICE, ImageClassification, ImageEntry, patient_entries
from .siglip import SiglipSettings, load_siglip


class ClassifyImagesArgs(BaseModel):
    image: str | None = Field(default=None, description="citation key of one image in the record (e.g. Media/abc); "
                              "omit to score every image of the patient (up to `limit`)")
    labels: list[str] | None = Field(default=None, description="findings to score, e.g. ['pleural effusion', 'cardiomegaly']; "
                                     "omit for the default set of the modality")
    modality: str | None = Field(default=None, description="chest_xray, dermatology, fundus or pathology")
    limit: int = Field(default=5, ge=1, le=50)


class SearchImagesArgs(BaseModel):
    query: str = Field(description="what the image should show, e.g. 'frontal chest film with effusion'")
    limit: int = Field(default=5, ge=1, le=50)


class SimilarImagesArgs(BaseModel):
    image: str = Field(description="citation key of an image in the record (e.g. Media/abc), or a local image file")
    limit: int = Field(default=5, ge=1, le=50)


class ImageEvidence(BaseModel):
    """What an image tool returns: evidence items (citation + text) and the structured results."""

    items: list[dict[str, Any]] = Field(default_factory=list)
    classifications: list[ImageClassification] = Field(default_factory=list)
    hits: list[ImageHit] = Field(default_factory=list)
    notice: str = NOTICE


def _entries(patient: Any) -> list[ImageEntry]:
    entries = patient_entries(patient)
    for e in entries:
        e.scope = patient.patient_key
    return entries


def _index(patient: Any, settings: SiglipSettings | None, path: str | Path | None) -> ImageIndex:
    index = ImageIndex(load_siglip(settings), path=path)
    index.add(_entries(patient))
    return index


def classify_images(args: ClassifyImagesArgs, patient: Any, *, settings: SiglipSettings | None = None) -> ImageEvidence:
    """Zero-shot MedSigLIP scores (0..1 per label, independent; not diagnoses) for the patient's images:
    one image by its citation key, or all of them. Use for imaging questions ("does the chest film show an
    effusion?") beside the radiology reports; cite the image key."""
    from .images import classify_image

    entries = _entries(patient)
    if args.image:
        entries = [e for e in entries if e.key == args.image.strip()]
        if not entries:
            raise InputError(f"no image with citation key {args.image!r} in this record")
    enc = load_siglip(settings)
    seen, results = set(), []
    for e in entries:
        if e.key in seen:
            continue
        seen.add(e.key)
        results.append(classify_image(e, args.labels, args.modality, encoder=enc))
        if len(results) >= args.limit:
            break
    items = [{"citation": r.citation, "text": r.text, "date": r.date} for r in results]
    return ImageEvidence(items=items, classifications=results)


def search_images(args: SearchImagesArgs, patient: Any, *, settings: SiglipSettings | None = None,
                  path: str | Path | None = None) -> ImageEvidence:
    """Find the patient's images that match a description (text-to-image search with MedSigLIP), e.g.
    'frontal chest film with effusion'. Returns image citation keys with similarity scores."""
    hits = _index(patient, settings, path).search_text(args.query, [patient.patient_key], args.limit)
    return ImageEvidence(items=[{"citation": h.citation, "text": h.text, "date": h.date} for h in hits], hits=hits)


def similar_images(args: SimilarImagesArgs, patient: Any, *, settings: SiglipSettings | None = None,
                   path: str | Path | None = None) -> ImageEvidence:
    """Find the patient's prior images most similar to one image (by citation key or a local file), e.g. to
    compare a new chest film with earlier ones. Returns image citation keys with similarity scores."""
    index = _index(patient, settings, path)
    match = [e for e in _entries(patient) if e.key == args.image.strip()]
    query: Any = match[0] if match else args.image
    if not match and not Path(args.image).is_file():
        raise InputError(f"no image with citation key {args.image!r} in this record, and no such file")
    hits = index.similar(query, [patient.patient_key], args.limit)
    return ImageEvidence(items=[{"citation": h.citation, "text": h.text, "date": h.date} for h in hits], hits=hits)


#: What the agent registers: name -> (function, arguments model).
IMAGE_TOOLS = {
    "classify_images": (classify_images, ClassifyImagesArgs),
    "search_images": (search_images, SearchImagesArgs),
    "similar_images": (similar_images, SimilarImagesArgs),
}
