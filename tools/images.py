"""A patient's images and their citation keys, and MedSigLIP zero-shot classification.

**Where images come from** (``collect_images``):

* FHIR resources of the patient: ``Media.content``, ``DocumentReference.content[].attachment``,
  ``DiagnosticReport.presentedForm[]`` and ``Binary`` whose ``contentType`` is ``image/*`` or
  ``application/dicom``, with inline ``data`` or a ``url`` to a local file (relative urls resolve
  against the folder of the file the resource was read from). ``ImagingStudy`` carries no pixels and
  is not embedded. Citation key: the resource, ``Media/abc`` (several image attachments of one
  resource share its key; ``part`` tells them apart).
* Image files (PNG, JPEG, DICOM) given on the command line or found under a folder: citation key
  ``file:<path relative to the folder given>`` (``file:RG1_UNCR.dcm`` for a single file).

**DICOM frames and series.** A single-frame instance is one image. A multi-frame instance gives its
middle frame (``frames="middle"``, the default, the same frame the MedGemma backend shows the model)
or up to ``max_frames`` evenly spaced frames (``frames="all"``), keyed ``file:x.dcm#frame=N`` (0-based).
Each instance of a series is its own entry; entries carry the series UID so results can be grouped.
DICOM objects without pixel data (SR, KOS) are skipped and reported.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from chartwise.fhir.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".bmp", ".tif", ".tiff", ".webp"}
IMAGE_MIME_PREFIXES = ("image/", "application/dicom")
FramePolicy = Literal["middle", "all"]
NOTICE = ("Zero-shot image-text similarity scores from MedSigLIP: not diagnoses, not calibrated "
          "probabilities of disease; each label is scored independently.")

# -- default label sets -----------------------------------------------------------------------------
#: Labels per modality; each label is scored with the prompt PROMPTS[modality].format(label=...).
DEFAULT_LABELS: dict[str, list[str]] = {
    "chest_xray": ["no acute findings", "pleural effusion", "cardiomegaly", "pneumothorax", "consolidation",
                   "pulmonary edema", "atelectasis", "lung nodule or mass", "pneumonia", "rib fracture",
                   "support devices"],
    "dermatology": ["melanoma", "benign nevus", "basal cell carcinoma", "squamous cell carcinoma",
                    "seborrheic keratosis", "actinic keratosis", "eczema", "psoriasis"],
    "fundus": ["a normal retina", "diabetic retinopathy", "glaucomatous optic disc", "age-related macular degeneration",
               "retinal hemorrhage", "papilledema"],
    "pathology": ["normal tissue", "tumor tissue", "adenocarcinoma", "lymphocytes", "necrosis", "stroma", "mucin"],
}
PROMPTS: dict[str, str] = {
    "chest_xray": "a chest X-ray showing {label}",
    "dermatology": "a dermatology photograph of {label}",
    "fundus": "a fundus photograph of {label}",
    "pathology": "a histopathology image of {label}",
    "other": "a medical image showing {label}",
}
MODALITIES = tuple(DEFAULT_LABELS)
_MODALITY_ALIASES = {"cxr": "chest_xray", "chest": "chest_xray", "xray": "chest_xray", "x-ray": "chest_xray",
                     "cr": "chest_xray", "dx": "chest_xray", "derm": "dermatology", "skin": "dermatology",
                     "retina": "fundus", "op": "fundus", "histopathology": "pathology", "path": "pathology",
                     "sm": "pathology", "wsi": "pathology"}


def normalize_modality(modality: str | None) -> str | None:
    if not modality:
        return None
    m = modality.strip().lower().replace(" ", "_")
    m = _MODALITY_ALIASES.get(m, m)
    if m not in DEFAULT_LABELS and m != "other":
        raise InputError(f"unknown modality {modality!r}: use one of {', '.join(MODALITIES)} (or pass --labels)")
    return m


def prompt_for(label: str, modality: str | None) -> str:
    """The text scored for a label: a bare label goes into the modality's prompt; a label that is
    already a sentence (starts with 'a ' / 'an ' / 'the ') is used as written."""
    if label.lower().startswith(("a ", "an ", "the ")):
        return label
    return PROMPTS.get(modality or "other", PROMPTS["other"]).format(label=label)


# -- image entries ----------------------------------------------------------------------------------
@dataclass
class ImageEntry:
    """One image to embed or classify: its citation key and how to get its pixels."""

    key: str  # the citation key: "Media/abc" or "file:RG1_UNCR.dcm" (with "#frame=N" for one frame)
    loader: Callable[[], Any] = field(repr=False)
    source: str = ""  # file path or resource path, for messages
    kind: Literal["file", "attachment", "dicom"] = "file"
    part: int = 0  # attachment index within the resource
    frame: int | None = None  # DICOM frame (None: the instance's middle frame, or a single frame)
    frames: int = 1
    modality: str | None = None  # DICOM Modality / a guess from the resource
    body_part: str | None = None
    series: str | None = None
    date: str | None = None
    description: str | None = None
    patient: str | None = None  # "Patient/id" when the image belongs to a FHIR patient
    scope: str = ""  # what the index filters on: "Patient/id", or "path:<absolute folder or file>"
    fingerprint: str = ""  # content hash, so re-indexing unchanged images is skipped

    @property
    def entry_id(self) -> str:
        return f"{self.key}|{self.part}|{self.frame if self.frame is not None else ''}"

    def load(self):
        return self.loader()

    def label_modality(self) -> str | None:
        """The default label set this image suggests (DICOM CR/DX of the chest -> chest_xray)."""
        text = " ".join(x for x in (self.modality, self.body_part, self.description) if x).lower()
        if not text:
            return None
        if any(w in text for w in ("chest", "thorax", "lung", "cxr")) and not any(w in text for w in (" ct", "ct ")):
            if (self.modality or "").upper() in ("", "CR", "DX", "XC", "RG") or "x-ray" in text or "radiograph" in text:
                return "chest_xray"
        if any(w in text for w in ("derm", "skin", "lesion")):
            return "dermatology"
        if any(w in text for w in ("fundus", "retina", "ophthalm")):
            return "fundus"
        if any(w in text for w in ("patholog", "histolog", "slide")) or (self.modality or "").upper() == "SM":
            return "pathology"
        return None


def _decode(source: Any):
    from .image_loading import load_image  # PNG/JPEG, DICOM windowing, MONOCHROME1 inversion, attachments

    return load_image(source)


def _is_dicom(data: bytes, name: str = "") -> bool:
    return (len(data) > 132 and data[128:132] == b"DICM") or name.lower().endswith((".dcm", ".dicom"))


def _dicom_frame_bytes(ds: Any, index: int) -> bytes:
    """A single-frame, uncompressed copy of frame ``index`` of a multi-frame dataset, as DICOM bytes."""
    import copy

    from pydicom.pixels import pixel_array

    frame = pixel_array(ds, index=index)
    single = copy.deepcopy(ds)
    for tag in ("NumberOfFrames", "FrameIncrementPointer", "PerFrameFunctionalGroupsSequence"):
        if tag in single:
            delattr(single, tag)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("YBR") and frame.ndim == 3:
        photometric = "RGB"
    single.set_pixel_data(frame, photometric, int(getattr(ds, "BitsStored", 8 * frame.itemsize)))
    buf = io.BytesIO()
    single.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _dicom_entries(data: bytes, key: str, source: str, *, frames: FramePolicy, max_frames: int,
                   patient: str | None = None, part: int = 0, kind: str = "dicom") -> list[ImageEntry]:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types
        raise InputError(f"{source}: not a readable DICOM file ({type(exc).__name__})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(f"{source}: DICOM {getattr(ds, 'Modality', '?')} object without pixel data")
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    meta = dict(modality=str(getattr(ds, "Modality", "") or "") or None,
                body_part=str(getattr(ds, "BodyPartExamined", "") or "") or None,
                series=str(getattr(ds, "SeriesInstanceUID", "") or "") or None,
                date=_dicom_date(ds), description=str(getattr(ds, "StudyDescription", "") or "") or None,
                patient=patient, frames=n)
    digest = hashlib.sha1(data).hexdigest()[:16]
    if n <= 1 or frames == "middle":
        return [ImageEntry(key=key, loader=lambda: _decode(data), source=source, kind=kind, part=part,
                           fingerprint=digest, **meta)]
    step = max(1, -(-n // max_frames))
    out = []
    for i in range(0, n, step):
        out.append(ImageEntry(key=f"{key}#frame={i}" if key.startswith("file:") else key,
                              loader=lambda i=i: _decode(_dicom_frame_bytes(ds, i)), source=f"{source} frame {i}",
                              kind=kind, part=part, frame=i, fingerprint=f"{digest}:{i}", **meta))
    return out


def _dicom_date(ds: Any) -> str | None:
    for tag in ("AcquisitionDate", "SeriesDate", "StudyDate", "ContentDate"):
        v = str(getattr(ds, tag, "") or "")
        if len(v) == 8 and v.isdigit():
            return f"{v[:4]}-{v[4:6]}-{v[6:]}"
    return None


def file_entries(path: str | Path, *, key: str | None = None, frames: FramePolicy = "middle",
                 max_frames: int = 16) -> list[ImageEntry]:
    """Entries for one image file (PNG/JPEG: one; DICOM: one, or one per frame with ``frames="all"``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: image file not found")
    key = key or f"file:{p.name}"
    data = p.read_bytes()
    if _is_dicom(data, p.name):
        return _dicom_entries(data, key, str(p), frames=frames, max_frames=max_frames)
    digest = hashlib.sha1(data).hexdigest()[:16]
    return [ImageEntry(key=key, loader=lambda: _decode(data), source=str(p), kind="file", fingerprint=digest)]


def folder_entries(folder: str | Path, *, frames: FramePolicy = "middle", max_frames: int = 16,
                   skipped: list[str] | None = None) -> list[ImageEntry]:
    """Entries for every image file under a folder (recursively), keyed ``file:<relative path>``."""
    root = Path(folder)
    out: list[ImageEntry] = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            out.extend(file_entries(p, key=f"file:{p.relative_to(root).as_posix()}", frames=frames, max_frames=max_frames))
        except InputError as err:
            if skipped is not None:
                skipped.append(str(err))
    return out


def _attachments(resource: dict) -> list[dict]:
    rtype = resource.get("resourceType")
    if rtype == "Media":
        return [resource["content"]] if isinstance(resource.get("content"), dict) else []
    if rtype == "DocumentReference":
        return [c.get("attachment") for c in resource.get("content") or [] if isinstance(c, dict)
                and isinstance(c.get("attachment"), dict)]
    if rtype == "DiagnosticReport":
        return [a for a in resource.get("presentedForm") or [] if isinstance(a, dict)]
    if rtype == "Binary" and resource.get("data"):
        return [{"contentType": resource.get("contentType"), "data": resource.get("data")}]
    return []


def _is_image_attachment(att: dict) -> bool:
    ct = str(att.get("contentType") or "").lower()
    if ct.startswith(IMAGE_MIME_PREFIXES):
        return True
    url = str(att.get("url") or "").lower()
    return not ct and url.endswith(tuple(IMAGE_SUFFIXES))


def _resource_date(resource: dict) -> str | None:
    for k in ("createdDateTime", "issued", "date", "effectiveDateTime", "created"):
        v = resource.get(k)
        if isinstance(v, str) and len(v) >= 10:
            return v[:10]
    period = resource.get("createdPeriod") or resource.get("effectivePeriod") or {}
    v = period.get("start") if isinstance(period, dict) else None
    return v[:10] if isinstance(v, str) else None


def _resource_text(resource: dict) -> str | None:
    parts = []
    for k in ("modality", "bodySite", "view", "code", "type"):
        v = resource.get(k)
        if isinstance(v, dict):
            parts.append(v.get("text") or " ".join(c.get("display", "") for c in v.get("coding") or []))
    for k in ("description", "conclusion"):
        if isinstance(resource.get(k), str):
            parts.append(resource[k])
    text = " ".join(p for p in parts if p).strip()
    return text or None


def attachment_entries(key: str, resource: dict, *, base_dir: Path | None = None, patient: str | None = None,
                       frames: FramePolicy = "middle", max_frames: int = 16,
                       skipped: list[str] | None = None) -> list[ImageEntry]:
    """Entries for the image attachments of one FHIR resource (inline data or a local file url)."""
    import base64

    out: list[ImageEntry] = []
    for part, att in enumerate(_attachments(resource)):
        if not _is_image_attachment(att):
            continue
        where = f"{key} attachment {part}"
        try:
            if att.get("data"):
                data = base64.b64decode(att["data"])
            elif att.get("url") and not str(att["url"]).startswith(("http://", "https://")):
                p = Path(str(att["url"]).removeprefix("file://"))
                if not p.is_absolute() and base_dir is not None:
                    p = base_dir / p
                if not p.is_file():
                    raise InputError(f"{where}: file {p} not found")
                data = p.read_bytes()
            else:
                raise InputError(f"{where}: no inline data and remote url {att.get('url')!r} is not fetched")
            ct = str(att.get("contentType") or "").lower()
            meta_mod = _resource_text(resource)
            if ct == "application/dicom" or _is_dicom(data, str(att.get("url") or "")):
                entries = _dicom_entries(data, key, where, frames=frames, max_frames=max_frames, patient=patient,
                                         part=part, kind="attachment")
            else:
                entries = [ImageEntry(key=key, loader=lambda d=data: _decode(d), source=where, kind="attachment",
                                      part=part, patient=patient, fingerprint=hashlib.sha1(data).hexdigest()[:16])]
            for e in entries:
                e.date = e.date or _resource_date(resource)
                e.description = e.description or meta_mod
            out.extend(entries)
        except (InputError, ValueError) as err:
            if skipped is not None:
                skipped.append(str(err))
    return out


def _origin_dir(origin: str | None) -> Path | None:
    """The folder of the file a resource was read from (origins look like '/x/bundle.json entry 3')."""
    text = str(origin or "")
    while text:
        p = Path(text)
        if p.is_file():
            return p.parent
        if p.is_dir():
            return p
        if " " not in text:
            return None
        text = text.rsplit(" ", 1)[0]
    return None


def patient_entries(patient: Any, *, frames: FramePolicy = "middle", max_frames: int = 16,
                    skipped: list[str] | None = None) -> list[ImageEntry]:
    """Entries for every image attached to a patient's record (``chartwise.fhir.store.PatientRecord``)."""
    out: list[ImageEntry] = []
    origins = getattr(patient.records, "origins", {})
    for key in patient.keys:
        resource = patient.records.refs.by_key.get(key)
        if not resource or resource.get("resourceType") not in ("Media", "DocumentReference", "DiagnosticReport", "Binary"):
            continue
        base = _origin_dir(origins.get(key))
        out.extend(attachment_entries(key, resource, base_dir=base, patient=patient.patient_key, frames=frames,
                                      max_frames=max_frames, skipped=skipped))
    return out


# -- zero-shot classification -----------------------------------------------------------------------
class LabelScore(BaseModel):
    label: str
    prompt: str = Field(description="the text the image was scored against")
    score: float = Field(ge=0.0, le=1.0, description="sigmoid image-text score, independent of the other labels")


class ImageClassification(BaseModel):
    """Zero-shot scores for one image: evidence with a citation key, never a diagnosis."""

    citation: str = Field(description="the image's citation key (Type/id, or file:<name>)")
    modality: str | None = Field(default=None, description="the label set used")
    labels: list[str]
    scores: dict[str, float] = Field(description="label -> sigmoid score in [0, 1] (independent, not a softmax)")
    ranked: list[LabelScore]
    model: str
    date: str | None = None
    frame: int | None = None
    notice: str = NOTICE
    text: str = Field(default="", description="one-line rendering for evidence packs")

    def contract(self) -> dict[str, Any]:
        """The ``image classify --json`` object: {"image", "scores", "model", ...}."""
        return {"image": self.citation, "scores": self.scores, "model": self.model, "modality": self.modality,
                "frame": self.frame, "notice": self.notice}


def render_scores(citation: str, ranked: list[LabelScore], model: str, top: int = 5) -> str:
    shown = ", ".join(f"{r.label} {r.score:.2f}" for r in ranked[:top])
    return f"MedSigLIP zero-shot scores for image {citation} (model {model}; not a diagnosis): {shown}"


def classify_image(image: Any, labels: list[str] | None = None, modality: str | None = None, *,
                   key: str | None = None, encoder: Any = None, settings: Any = None) -> ImageClassification:
    """Score one image against labels with SigLIP's sigmoid (each label independent, in [0, 1]).

    ``image``: an :class:`ImageEntry`, a file path, a PIL image, bytes or a FHIR Attachment dict.
    ``labels``: the labels to score (default: the label set of ``modality``, else the one the image's
    DICOM/FHIR metadata suggests, else chest X-ray findings). ``key``: the citation key to report
    (defaults to the entry's key, or ``file:<name>`` for a path).
    """
    from .siglip import load_siglip

    enc = encoder or load_siglip(settings)
    entries = _as_entries(image, key)
    entry = entries[0]
    mod = normalize_modality(modality) or entry.label_modality() or (None if labels else "chest_xray")
    labels = [lbl.strip() for lbl in (labels or DEFAULT_LABELS[mod]) if lbl and lbl.strip()]
    if not labels:
        raise InputError("no labels to score: pass --labels L [L ...] or a --modality")
    labels = list(dict.fromkeys(labels))
    prompts = [prompt_for(lbl, mod) for lbl in labels]
    img_emb = enc.embed_images([entry.load()])
    probs = enc.probabilities(img_emb, enc.embed_texts(prompts))[0]
    ranked = sorted((LabelScore(label=lbl, prompt=p, score=round(float(s), 6)) for lbl, p, s in zip(labels, prompts, probs)),
                    key=lambda r: -r.score)
    return ImageClassification(citation=entry.key, modality=mod, labels=labels,
                               scores={lbl: round(float(s), 6) for lbl, s in zip(labels, probs)}, ranked=ranked,
                               model=enc.model_id, date=entry.date, frame=entry.frame,
                               text=render_scores(entry.key, ranked, enc.model_id))


def _as_entries(image: Any, key: str | None = None) -> list[ImageEntry]:
    if isinstance(image, ImageEntry):
        return [image]
    if isinstance(image, (str, Path)) and not str(image).startswith("data:"):
        return file_entries(image, key=key)
    return [ImageEntry(key=key or "image:query", loader=lambda: _decode(image), kind="file")]


def entries_for_path(path: str | Path, *, patient_id: str | None = None, frames: FramePolicy = "middle",
                     max_frames: int = 16, skipped: list[str] | None = None) -> tuple[list[ImageEntry], list[str]]:
    """The images of PATH: an image file, a folder of image files and/or FHIR files, or a FHIR source.

    Returns (entries, scopes): scopes are ``Patient/<id>`` for FHIR images and ``path:<absolute path>``
    for image files, the filters the index is queried with.
    """
    text = str(path)
    is_url = text.startswith(("http://", "https://"))
    p = Path(text)
    entries: list[ImageEntry] = []
    scopes: list[str] = []
    if not is_url and not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if not is_url and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        entries = file_entries(p, frames=frames, max_frames=max_frames)
        for e in entries:
            e.scope = f"path:{p.resolve()}"
        return entries, [f"path:{p.resolve()}"]
    fhir_here = is_url or p.is_file() or any(q.suffix.lower() in (".json", ".ndjson", ".jsonl") or q.name.endswith(".ndjson.gz")
                                             for q in p.rglob("*") if q.is_file())
    if not is_url and p.is_dir():
        files = folder_entries(p, frames=frames, max_frames=max_frames, skipped=skipped)
        if files:
            scope = f"path:{p.resolve()}"
            for e in files:
                e.scope = scope
            entries.extend(files)
            scopes.append(scope)
    if fhir_here:
        from chartwise.fhir.store import load

        records = load(text)
        # One patient (chosen, or the only one); otherwise every patient's images, each in its own scope.
        patients = [records.patient(patient_id)] if patient_id or len(records.patient_keys()) == 1 else records.patients()
        fhir_entries: list[ImageEntry] = []
        for pr in patients:
            for e in patient_entries(pr, frames=frames, max_frames=max_frames, skipped=skipped):
                e.scope = pr.patient_key
                fhir_entries.append(e)
            scopes.append(pr.patient_key)
        # A file that a FHIR resource also points to is cited by the resource, not by its file name.
        cited = {e.fingerprint for e in fhir_entries}
        entries = [e for e in entries if e.fingerprint not in cited] + fhir_entries
        if not any(e.scope.startswith("path:") for e in entries):
            scopes = [s for s in scopes if not s.startswith("path:")]
    return entries, scopes


def iter_unique(entries: Iterable[ImageEntry]) -> list[ImageEntry]:
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.entry_id not in seen:
            seen.add(e.entry_id)
            out.append(e)
    return out
