"""Content-addressed text vectors: every distinct text is embedded once per store, then reused.

A clinical record repeats itself.  Copied-forward note text ("No known allergies.", the same
medication list in every visit note) and code displays shared by every patient with the same lab
make the distinct *sentences and strings* of a chart a small fraction of its text: the notes of one
Synthea patient hold 18,710 sentences but only 833 distinct ones.  So the index never embeds a note
chunk as a whole; it embeds the chunk's distinct sentences, keeps each sentence's vector under the
hash of its text, and **pools** the chunk's vector from them (length-weighted mean, re-normalized:
the mean pooling a sentence-transformer applies to tokens, applied to sentences).

The cache lives in the same Chroma store as the index (a collection of vectors with hash ids and no
text, so it holds no record text), so it serves an embedded store and a Chroma server alike, and a
bounded in-process map in front of it saves the round trip for parts seen recently.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np

#: Parts kept in memory in front of the Chroma collection (384 floats each: about 1.5 KB).
MEMORY_ENTRIES = 50_000


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


def stored_vectors(col: Any, ids: Sequence[str], max_batch: int) -> dict[str, np.ndarray]:
    """The vectors ``col`` holds for ``ids`` (absent ids are left out), fetched ``max_batch`` at a time."""
    out: dict[str, np.ndarray] = {}
    for i in range(0, len(ids), max_batch):
        got = col.get(ids=list(ids[i:i + max_batch]), include=["embeddings"])
        embs = got["embeddings"] if got["embeddings"] is not None else []
        out.update((h, np.asarray(e, dtype=np.float32)) for h, e in zip(got["ids"], embs))
    return out


def pool(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The length-weighted mean of unit vectors, re-normalized (one vector: itself)."""
    if len(vectors) == 1:
        return np.asarray(vectors[0], dtype=np.float32)
    m = np.asarray(vectors, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    v = (m * w[:, None]).sum(axis=0)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else m[0]


class VectorCache:
    """Vectors of texts by content hash: memory, then the ``collection``, then ``embed`` for the rest."""

    def __init__(self, collection: Callable[[], Any], embed: Callable[[list[str]], list[np.ndarray]],
                 max_batch: int = 1000, memory_entries: int = MEMORY_ENTRIES) -> None:
        self._collection = collection
        self._embed = embed
        self.max_batch = max_batch
        self.memory_entries = memory_entries
        self._memory: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, h: str, vec: np.ndarray) -> None:
        self._memory[h] = vec
        self._memory.move_to_end(h)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)

    def vectors(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], int]:
        """``({hash: vector} for every text, how many texts had to be embedded)``."""
        wanted: dict[str, str] = {}
        for t in texts:
            wanted.setdefault(text_hash(t), t)
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for h in wanted:
                hit = self._memory.get(h)
                if hit is not None:
                    out[h] = hit
        unknown = [h for h in wanted if h not in out]
        if unknown:
            out.update(stored_vectors(self._collection(), unknown, self.max_batch))
        missing = [h for h in wanted if h not in out]
        if missing:
            embedded = self._embed([wanted[h] for h in missing])
            new = {h: np.asarray(v, dtype=np.float32) for h, v in zip(missing, embedded)}
            col = self._collection()
            ids = list(new)
            for i in range(0, len(ids), self.max_batch):
                batch = ids[i:i + self.max_batch]
                col.add(ids=batch, embeddings=[new[h] for h in batch])
            out.update(new)
        with self._lock:
            for h, v in out.items():
                self._remember(h, v)
        return out, len(missing)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
