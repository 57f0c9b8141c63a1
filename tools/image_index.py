"""A patient's image index: MedSigLIP embeddings in their own chromadb collection, queried by text
("frontal chest film with effusion") or by an image (a patient's prior images like this one).

One collection per image model (``images-<hash of the model id>``, cosine space): embeddings of
different models never mix. Every entry carries its citation key and a ``scope`` (``Patient/<id>``
for FHIR images, ``path:<absolute path>`` for image files), and queries filter on scopes. Entries are
keyed by scope + citation key + attachment part + frame and remember a content hash, so re-indexing
unchanged images embeds nothing.

The store is an embedded ``chromadb.PersistentClient`` under ``<data dir>/chroma`` (data dir: env
``CHARTWISE_DATA_DIR``, else the platform's user data folder, e.g. ``~/.local/share/chartwise``),
telemetry off; pass ``client=`` to use another (``chromadb.HttpClient`` for a Chroma server).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from chartwise.fhir.errors import ConfigError

from .images import ImageEntry, _as_entries, iter_unique
from .siglip import SiglipEncoder

ENV_DATA_DIR = "CHARTWISE_DATA_DIR"


def data_dir(path: str | Path | None = None) -> Path:
    """Where chartwise keeps its stores: ``path``, env CHARTWISE_DATA_DIR, or the user data folder."""
    if path:
        return Path(path).expanduser()
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("chartwise", appauthor=False))


def chroma_client(path: str | Path | None = None) -> Any:
    """An embedded persistent chromadb client under ``<data dir>/chroma``, telemetry off."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings

    where = data_dir(path) / "chroma"
    try:
        where.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(where), settings=Settings(anonymized_telemetry=False))
    except OSError as exc:
        raise ConfigError(f"index folder {where} is not writable ({exc.strerror or exc}); set {ENV_DATA_DIR}") from None


def collection_name(model_id: str) -> str:
    return f"images-{hashlib.sha1(model_id.encode()).hexdigest()[:16]}"


class ImageHit(BaseModel):
    """One image found by a query: evidence with its citation key."""

    citation: str = Field(description="the image's citation key (Type/id, or file:<name>)")
    score: float = Field(description="cosine similarity of the embeddings, -1..1")
    probability: float | None = Field(default=None, description="text queries: SigLIP sigmoid image-text score, 0..1")
    date: str | None = None
    modality: str | None = None
    description: str | None = None
    frame: int | None = None
    series: str | None = None
    source: str = ""
    text: str = Field(default="", description="one-line rendering for evidence packs")


class IndexReport(BaseModel):
    collection: str
    scopes: list[str]
    images: int = Field(description="entries in scope after indexing")
    added: int = 0
    unchanged: int = 0
    failed: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class ImageIndex:
    """Embeddings of images in one chromadb collection per model; add, search by text, find similar."""

    def __init__(self, encoder: SiglipEncoder, *, path: str | Path | None = None, client: Any = None) -> None:
        self.encoder = encoder
        self.client = client if client is not None else chroma_client(path)
        self.name = collection_name(encoder.model_id + f"|{encoder.dim}")
        self.collection = self.client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
            metadata={"model": encoder.model_id, "kind": "chartwise-images"})

    @staticmethod
    def _id(entry: ImageEntry) -> str:
        return hashlib.sha1(f"{entry.scope}|{entry.entry_id}".encode()).hexdigest()

    def add(self, entries: list[ImageEntry], *, batch: int = 32) -> IndexReport:
        """Embed and store entries (unchanged ones are skipped); unreadable images are reported, not fatal."""
        start = time.perf_counter()
        entries = iter_unique(entries)
        ids = [self._id(e) for e in entries]
        known: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            got = self.collection.get(ids=ids[i:i + 500], include=["metadatas"])
            known.update({k: (m or {}).get("fingerprint", "") for k, m in zip(got["ids"], got["metadatas"])})
        todo = [(i, e) for i, e in zip(ids, entries) if known.get(i) != e.fingerprint or not e.fingerprint]
        report = IndexReport(collection=self.name, scopes=sorted({e.scope for e in entries}), images=0,
                             unchanged=len(entries) - len(todo))
        for s in range(0, len(todo), batch):
            chunk, images = [], []
            for i, e in todo[s:s + batch]:
                try:
                    images.append(e.load())
                    chunk.append((i, e))
                except Exception as exc:  # noqa: BLE001 - one bad image must not stop the index
                    report.failed.append(f"{e.key} ({e.source}): {' '.join(str(exc).split())[:200]}")
            if not chunk:
                continue
            emb = self.encoder.embed_images(images)
            self.collection.upsert(ids=[i for i, _ in chunk], embeddings=emb.tolist(),
                                   metadatas=[_metadata(e) for _, e in chunk])
            report.added += len(chunk)
        report.images = self.count(report.scopes)
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    def count(self, scopes: list[str] | None = None) -> int:
        if not scopes:
            return self.collection.count()
        return len(self.collection.get(where=_where(scopes), include=[])["ids"])

    def _query(self, emb: Any, scopes: list[str] | None, limit: int, *, exclude: set[str] | None = None,
               text: bool = False) -> list[ImageHit]:
        total = self.count(scopes)
        if total == 0:
            return []
        n = min(total, max(limit * 4, limit + 8))  # several entries may share a citation key (frames, parts)
        res = self.collection.query(query_embeddings=[emb.tolist()], n_results=n, where=_where(scopes),
                                    include=["metadatas", "distances"])
        best: dict[str, ImageHit] = {}
        for meta, dist in zip(res["metadatas"][0], res["distances"][0]):
            meta = meta or {}
            key = meta.get("citation", "")
            if not key or (exclude and meta.get("fingerprint") in exclude):
                continue
            sim = 1.0 - float(dist)  # both sides are L2-normalized: cosine distance = 1 - cos
            prob = 1.0 / (1.0 + math.exp(-(sim * self.encoder.logit_scale + self.encoder.logit_bias))) if text else None
            frame = meta.get("frame", -1)
            hit = ImageHit(citation=key, score=round(sim, 6), probability=None if prob is None else round(prob, 6),
                           date=meta.get("date") or None, modality=meta.get("modality") or None,
                           description=meta.get("description") or None, frame=frame if frame >= 0 else None,
                           series=meta.get("series") or None, source=meta.get("source", ""))
            if key not in best or hit.score > best[key].score:
                best[key] = hit
        return sorted(best.values(), key=lambda h: -h.score)[:limit]

    def search_text(self, text: str, scopes: list[str] | None = None, limit: int = 5) -> list[ImageHit]:
        """Images whose embedding is closest to the text's (best entry per citation key)."""
        temb = self.encoder.embed_texts([text])
        hits = self._query(temb[0], scopes, limit, text=True)
        for h in hits:
            h.text = (f"image {h.citation}{' ' + h.date if h.date else ''}{' ' + h.modality if h.modality else ''}: "
                      f"MedSigLIP match to {text!r}: similarity {h.score:.3f}, sigmoid score {h.probability or 0:.2f} "
                      f"(retrieval signal, not a finding)")
        return hits

    def similar(self, image: Any, scopes: list[str] | None = None, limit: int = 5, *,
                exclude_self: bool = True) -> list[ImageHit]:
        """A patient's images most like ``image`` (an ImageEntry, path, PIL image or attachment)."""
        entry = _as_entries(image)[0]
        emb = self.encoder.embed_images([entry.load()])[0]
        # The query image itself (same content hash) is not its own neighbour.
        exclude = {entry.fingerprint} if exclude_self and entry.fingerprint else None
        hits = self._query(emb, scopes, limit, exclude=exclude)
        for h in hits:
            h.text = (f"image {h.citation}{' ' + h.date if h.date else ''}{' ' + h.modality if h.modality else ''}: "
                      f"MedSigLIP image similarity {h.score:.3f} to {entry.key} (retrieval signal, not a finding)")
        return hits

    def remove_scope(self, scope: str) -> None:
        self.collection.delete(where={"scope": scope})


def _where(scopes: list[str] | None) -> dict | None:
    if not scopes:
        return None
    return {"scope": scopes[0]} if len(scopes) == 1 else {"scope": {"$in": list(scopes)}}


def _metadata(e: ImageEntry) -> dict[str, Any]:
    meta = {"citation": e.key, "scope": e.scope, "fingerprint": e.fingerprint, "source": e.source[:500],
            "kind": e.kind, "part": e.part, "frame": -1 if e.frame is None else e.frame, "frames": e.frames,
            "modality": e.modality or "", "body_part": e.body_part or "", "series": e.series or "",
            "date": e.date or "", "description": (e.description or "")[:500], "patient": e.patient or ""}
    return meta


def similar_images(image: Any, entries_or_scopes: list[str] | None = None, *, index: ImageIndex | None = None,
                   limit: int = 5, encoder: SiglipEncoder | None = None, path: str | Path | None = None) -> list[ImageHit]:
    """Indexed images most like ``image`` within the given scopes (``Patient/<id>`` or ``path:...``)."""
    if index is None:
        from .siglip import load_siglip

        index = ImageIndex(encoder or load_siglip(), path=path)
    return index.similar(image, entries_or_scopes, limit)


def search_images(text: str, scopes: list[str] | None = None, *, index: ImageIndex | None = None, limit: int = 5,
                  encoder: SiglipEncoder | None = None, path: str | Path | None = None) -> list[ImageHit]:
    """Text-to-image search over indexed images within the given scopes."""
    if index is None:
        from .siglip import load_siglip

        index = ImageIndex(encoder or load_siglip(), path=path)
    return index.search_text(text, scopes, limit)
