"""Image loading (used by the multimodal backends and the image tools): PNG/JPEG files, DICOM files, bytes, base64 and FHIR
Attachments, all turned into RGB PIL images no larger than ``max_side`` pixels.

DICOM: the modality LUT (rescale slope/intercept) is applied, then the VOI LUT or the window
centre/width when the file carries one, otherwise a 1st-99th percentile window; MONOCHROME1 is
inverted so that air is black, as on a MONOCHROME2 image; a multi-frame image gives its middle frame.
"""
from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from chartwise.fhir.errors import InputError

from pydantic import BaseModel, ConfigDict, Field


class ImageAttachment(BaseModel):
    """A FHIR Attachment carrying an image inline (``contentType`` + base64 ``data``) or by ``url``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    content_type: str | None = Field(default=None, alias="contentType")
    data: str | None = None
    url: str | None = None
    title: str | None = None

DEFAULT_MAX_SIDE = 896  # MedGemma's SigLIP encoder sees 896x896
_DICOM_MAGIC_OFFSET = 128


def _is_dicom_bytes(data: bytes) -> bool:
    return len(data) > 132 and data[_DICOM_MAGIC_OFFSET:_DICOM_MAGIC_OFFSET + 4] == b"DICM"


def _to_uint8(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        high = low + 1.0
    scaled = (arr.astype(np.float64) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def dicom_to_image(source: str | Path | bytes, *, max_side: int = DEFAULT_MAX_SIDE, name: str = "") -> Image.Image:
    """Render a DICOM dataset's pixels as an RGB image (windowed, MONOCHROME1 inverted, resized)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    label = name or (str(source) if not isinstance(source, bytes) else "DICOM data")
    try:
        ds = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else str(source))
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for unreadable or pixel-less files
        raise InputError(f"{label}: not a DICOM image with readable pixel data ({type(exc).__name__}: {exc})") from exc

    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if frames > 1:
        pixels = pixels[frames // 2]
    if samples == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        arr = pixels.astype(np.float64)
        img = Image.fromarray(_to_uint8(arr, float(arr.min()), float(arr.max())), mode="RGB")
    else:
        arr = apply_modality_lut(pixels, ds).astype(np.float64)
        has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
        if has_voi:
            arr = np.asarray(apply_voi_lut(arr, ds), dtype=np.float64)
            low, high = float(arr.min()), float(arr.max())
        else:
            low, high = (float(v) for v in np.percentile(arr, [1.0, 99.0]))
        out = _to_uint8(arr, low, high)
        if photometric == "MONOCHROME1":
            out = 255 - out
        img = Image.fromarray(out, mode="L").convert("RGB")
    return _fit(img, max_side)


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    if img.mode != "RGB":
        img = img.convert("RGB")
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC)
    return img


def _from_bytes(data: bytes, *, max_side: int, name: str) -> Image.Image:
    if _is_dicom_bytes(data):
        return dicom_to_image(data, max_side=max_side, name=name)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{name}: not a PNG, JPEG or DICOM image") from exc
    return _fit(img, max_side)


def _decode_b64(data: str, name: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{name}: attachment data is not valid base64") from exc


def load_image(source: Any, *, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """Load one image from a path, bytes, a ``data:`` URL, a PIL image or a FHIR Attachment."""
    if isinstance(source, Image.Image):
        return _fit(source, max_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), max_side=max_side, name="image bytes")
    if isinstance(source, str) and source.startswith("data:"):
        header, _, payload = source.partition(",")
        return _from_bytes(_decode_b64(payload, "data URL"), max_side=max_side, name="data URL")
    if isinstance(source, dict) or isinstance(source, ImageAttachment) or hasattr(source, "contentType"):
        att = source if isinstance(source, ImageAttachment) else ImageAttachment.model_validate(
            source if isinstance(source, dict) else {
                "contentType": getattr(source, "contentType", None), "data": getattr(source, "data", None),
                "url": getattr(source, "url", None), "title": getattr(source, "title", None)})
        name = f"attachment {att.title or att.url or att.content_type or ''}".strip()
        if att.data:
            data = att.data if isinstance(att.data, bytes) else _decode_b64(att.data, name)
            return _from_bytes(data, max_side=max_side, name=name)
        if att.url and not att.url.startswith(("http://", "https://")):
            return load_image(att.url.removeprefix("file://"), max_side=max_side)
        raise InputError(f"{name}: the attachment has no inline data (remote url {att.url!r} is not fetched)")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{path}: image file not found")
        data = path.read_bytes()
        if _is_dicom_bytes(data) or path.suffix.lower() in {".dcm", ".dicom"}:
            return dicom_to_image(data, max_side=max_side, name=str(path))
        return _from_bytes(data, max_side=max_side, name=str(path))
    raise InputError(f"cannot read an image from a {type(source).__name__}")


def load_images(sources: list[Any] | None, *, max_side: int = DEFAULT_MAX_SIDE) -> list[Image.Image]:
    return [load_image(s, max_side=max_side) for s in (sources or [])]


def image_to_data_url(img: Image.Image, fmt: str = "PNG") -> str:
    """Encode an image as a ``data:`` URL (how the OpenAI-compatible backend sends images)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    mime = "image/png" if fmt.upper() == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
