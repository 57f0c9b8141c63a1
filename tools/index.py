"""The per-patient index: distinct concepts and note chunks in Chroma, with BM25 beside it.

Why it is cheap: thousands of Observations share a few dozen codes, so the index holds one
document per distinct **concept** (code displays, codes, the clinician words of its vocabulary
group, and the keys of the facts that carry it) rather than one per resource, plus sentence-aware
**note chunks** with character offsets (cited as ``DocumentReference/id#start-end``).  Every
document's id carries a content hash: re-indexing an unchanged patient finds every id present and
embeds nothing; a vector already stored for the same text (another patient, a repeated boilerplate
sentence) is reused instead of recomputed.

Storage: an embedded ``chromadb.PersistentClient`` under :class:`IndexSettings.path`, or a
``chromadb.HttpClient`` when ``host``/``port`` are set; telemetry is off either way.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import bm25s
import numpy as np

from chartwise.fhir.errors import ConfigError
from chartwise.fhir.facts import Category, ClinicalFact
from chartwise.fhir.store import PatientRecord

from .config import IndexSettings
from .embedding import SentenceTransformerEmbedding
from .vocabulary import Group, groups_for_display, groups_in_text, words

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

#: Note chunks aim at this many characters (sentences are never split unless longer than this).
CHUNK_CHARS = 360
RRF_K = 60


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


# ----------------------------------------------------------------------------------------- documents
@dataclass
class Concept:
    """One distinct thing the record holds (a lab code, a drug, a condition...) and the facts carrying it."""

    key: str
    label: str
    category: str
    resource_types: list[str]
    codes: list[str]
    displays: list[str]
    facts: list[ClinicalFact] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    text: str = ""

    @property
    def doc_id(self) -> str:
        return _hash(self.text)


@dataclass
class Chunk:
    """A span of a note's decoded text."""

    note: ClinicalFact
    start: int
    end: int
    text: str

    @property
    def citation(self) -> str:
        return f"{self.note.key}#{self.start}-{self.end}"


def concept_key(fact: ClinicalFact) -> str:
    family = fact.category.value
    if fact.codes:
        c = next((c for c in fact.codes if c.code), None)
        if c is not None:
            return f"{family}|{c.system or ''}|{c.code}"
    return f"{family}|label|{fact.label.strip().lower()}"


def build_concepts(facts: Iterable[ClinicalFact]) -> list[Concept]:
    by_key: dict[str, Concept] = {}
    for fact in facts:
        if fact.category == Category.note and fact.text:
            continue  # notes are chunked, not conceptualized
        key = concept_key(fact)
        concept = by_key.get(key)
        if concept is None:
            concept = by_key[key] = Concept(key=key, label=fact.label, category=fact.category.value, resource_types=[],
                                            codes=[], displays=[])
        concept.facts.append(fact)
        if fact.resource_type not in concept.resource_types:
            concept.resource_types.append(fact.resource_type)
        for c in fact.codes:
            if c.code and c.code not in concept.codes:
                concept.codes.append(c.code)
            if c.display and c.display not in concept.displays:
                concept.displays.append(c.display)
        if fact.label not in concept.displays:
            concept.displays.append(fact.label)
        for comp in fact.components:
            if comp.label not in concept.displays:
                concept.displays.append(comp.label)
            for c in comp.codes:
                if c.code and c.code not in concept.codes:
                    concept.codes.append(c.code)
    out = []
    for concept in by_key.values():
        concept.facts.sort(key=lambda f: (f.when is None, f.when or 0, f.key))
        concept.groups = groups_for_display(" | ".join(concept.displays), concept.codes)
        aliases = []
        for g in concept.groups:
            aliases.extend(g.names[:2] + g.aliases[:8])
        concept.text = " | ".join(dict.fromkeys(concept.displays + aliases)) + f" ({concept.category})"
        out.append(concept)
    out.sort(key=lambda c: c.key)
    return out


_SENT_END = re.compile(r"(?<=[.!?])\s+|\n+")


def chunk_note(note: ClinicalFact, size: int = CHUNK_CHARS) -> list[Chunk]:
    """Sentence-aware chunks of a note's text with character offsets into it (whitespace trimmed)."""
    text = note.text or ""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENT_END.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    # trim and drop empty sentences; split over-long ones on whitespace
    sents: list[tuple[int, int]] = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        while b - a > size:
            cut = text.rfind(" ", a, a + size)
            cut = cut if cut > a else a + size
            sents.append((a, cut))
            a = cut + 1 if cut < b and text[cut] == " " else cut
        if b > a:
            sents.append((a, b))
    chunks: list[Chunk] = []
    cur: tuple[int, int] | None = None
    for a, b in sents:
        if cur is None:
            cur = (a, b)
        elif b - cur[0] <= size:
            cur = (cur[0], b)
        else:
            chunks.append(Chunk(note, cur[0], cur[1], text[cur[0]:cur[1]]))
            cur = (a, b)
    if cur is not None:
        chunks.append(Chunk(note, cur[0], cur[1], text[cur[0]:cur[1]]))
    return chunks


# ----------------------------------------------------------------------------------------- store
class IndexStore:
    """The Chroma client and the three collections (concepts, note chunks, literature)."""

    def __init__(self, settings: IndexSettings) -> None:
        import chromadb
        from chromadb.config import Settings

        self.settings = settings
        chroma_settings = Settings(anonymized_telemetry=False, allow_reset=False)
        try:
            if settings.host or settings.port:
                self.client = chromadb.HttpClient(host=settings.host or "127.0.0.1", port=int(settings.port or 8000),
                                                  settings=chroma_settings)
                self.client.heartbeat()
            elif settings.persistent:
                settings.path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(settings.path), settings=chroma_settings)
            else:
                self.client = chromadb.EphemeralClient(settings=chroma_settings)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - unreachable server, unwritable folder
            where = f"{settings.host}:{settings.port}" if settings.host or settings.port else str(settings.path)
            raise ConfigError(f"cannot open the Chroma index at {where} ({type(err).__name__}); check CHARTWISE_INDEX_DIR or "
                              "CHARTWISE_CHROMA_HOST/CHARTWISE_CHROMA_PORT") from err
        self.embedder = SentenceTransformerEmbedding(model=settings.model, device=settings.device)
        self._collections: dict[str, Any] = {}
        self._qcache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        try:
            self.max_batch = int(self.client.get_max_batch_size())
        except Exception:  # noqa: BLE001
            self.max_batch = 1000

    def collection(self, kind: str) -> Any:
        with self._lock:
            if kind not in self._collections:
                safe_model = re.sub(r"[^A-Za-z0-9]+", "-", self.settings.model)[-40:].strip("-")
                name = f"{self.settings.prefix}-{kind}-{safe_model}"[:60].strip("-")
                self._collections[kind] = self.client.get_or_create_collection(
                    name=name, embedding_function=self.embedder, metadata={"hnsw:space": "cosine"})
            return self._collections[kind]

    # -- content-addressed upsert
    def sync(self, kind: str, scope: str, docs: list[tuple[str, str, dict]]) -> int:
        """Make ``kind`` hold exactly ``docs`` (id, text, metadata) for ``scope``; returns texts embedded.

        Ids already present are left alone; ids no longer wanted are deleted; new ids reuse any stored
        vector with the same text hash and embed only texts never seen.
        """
        col = self.collection(kind)
        existing = set(col.get(where={"scope": scope}, include=[])["ids"])
        wanted = {d[0]: d for d in docs}
        stale = [i for i in existing if i not in wanted]
        for i in range(0, len(stale), self.max_batch):
            col.delete(ids=stale[i:i + self.max_batch])
        new = [d for i, d in wanted.items() if i not in existing]
        if not new:
            return 0
        hashes = sorted({d[2]["hash"] for d in new})
        vectors: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 500):
            got = col.get(where={"hash": {"$in": hashes[i:i + 500]}}, include=["embeddings", "metadatas"])
            for meta, emb in zip(got["metadatas"], got["embeddings"] if got["embeddings"] is not None else []):
                vectors.setdefault(meta["hash"], np.asarray(emb, dtype=np.float32))
        missing: dict[str, str] = {}
        for _, text, meta in new:
            if meta["hash"] not in vectors:
                missing.setdefault(meta["hash"], text)
        if missing:
            embedded = self.embedder(list(missing.values()))
            vectors.update(zip(missing.keys(), embedded))
        for i in range(0, len(new), self.max_batch):
            batch = new[i:i + self.max_batch]
            col.add(ids=[d[0] for d in batch], documents=[d[1] for d in batch], metadatas=[d[2] for d in batch],
                    embeddings=[vectors[d[2]["hash"]] for d in batch])
        return len(missing)

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector (cached; encoded on one thread, which is fastest for a single short text)."""
        hit = self._qcache.get(text)
        if hit is not None:
            return hit
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            vec = np.asarray(self.embedder([text])[0], dtype=np.float32)
        finally:
            torch.set_num_threads(threads)
        if len(self._qcache) > 4096:
            self._qcache.clear()
        self._qcache[text] = vec
        return vec

    def dense(self, kind: str, vector: np.ndarray, where: dict, k: int) -> list[tuple[str, float]]:
        col = self.collection(kind)
        res = col.query(query_embeddings=[vector], n_results=k, where=where, include=["distances"])
        ids = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else [0.0] * len(ids)
        return list(zip(ids, dists))


_STORES: dict[str, IndexStore] = {}
_STORES_LOCK = threading.Lock()
_DEFAULT: IndexSettings | None = None


def configure(settings: IndexSettings | None) -> None:
    """Set the settings the tools use when none are passed (``None``: from the environment)."""
    global _DEFAULT
    _DEFAULT = settings
    _INDEXES.clear()


def current_settings() -> IndexSettings:
    return _DEFAULT or IndexSettings.from_env()


def get_store(settings: IndexSettings | None = None) -> IndexStore:
    settings = settings or current_settings()
    key = settings.model_dump_json()
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = IndexStore(settings)
        return _STORES[key]


# ----------------------------------------------------------------------------------------- lexical
def _tokens(text: str) -> list[str]:
    return words(text)


class Lexical:
    """BM25 (bm25s) over a small list of documents, with our own tokenization (keeps "k+", "a1c", "co2")."""

    def __init__(self, texts: list[str]) -> None:
        self.n = len(texts)
        self.model = None
        if self.n:
            self.model = bm25s.BM25()
            self.model.index([_tokens(t) or ["_"] for t in texts], show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        if not self.model:
            return []
        toks = _tokens(query)
        if not toks:
            return []
        docs, scores = self.model.retrieve([toks], k=min(k, self.n), show_progress=False, n_threads=0)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def rrf(*rankings: list[str], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion of ranked id lists."""
    out: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking):
            out[doc] = out.get(doc, 0.0) + 1.0 / (k + rank + 1)
    return out


# ----------------------------------------------------------------------------------------- the index
@dataclass
class ConceptHit:
    concept: Concept
    score: float
    group_match: str | None = None  # the question phrase that tied it to its vocabulary group


@dataclass
class ChunkHit:
    chunk: Chunk
    score: float


class PatientIndex:
    """One patient's concepts and note chunks, searchable by hybrid (BM25 + dense, RRF) retrieval."""

    def __init__(self, record: PatientRecord, store: IndexStore | None = None) -> None:
        self.record = record
        self.store = store or get_store()
        self.scope = record.patient_key
        self.facts = record.facts
        self.concepts = build_concepts(self.facts)
        self.concept_by_doc = {self._concept_id(c): c for c in self.concepts}
        self.concept_of_fact = {f.key: c for c in self.concepts for f in c.facts}
        self.notes = [f for f in self.facts if f.category == Category.note and f.text]
        self.chunks = [ch for note in self.notes for ch in chunk_note(note)]
        self.chunk_by_id = {self._chunk_id(ch): ch for ch in self.chunks}
        self.embedded = 0
        self.last_day = max((f.day for f in self.facts if f.day), default=None)
        self._concept_lex = Lexical([c.text for c in self.concepts])
        self._chunk_lex = Lexical([f"{ch.note.label} {ch.text}" for ch in self.chunks])

    def _concept_id(self, c: Concept) -> str:
        return f"{_hash(self.scope)}:{c.doc_id}:{_hash(c.key)}"

    def _chunk_id(self, ch: Chunk) -> str:
        return f"{_hash(self.scope)}:{ch.citation}:{_hash(ch.text)}"

    def build(self) -> "PatientIndex":
        """Bring the stored vectors up to date with the record (embeds only what is new)."""
        concept_docs = [(self._concept_id(c), c.text, {"scope": self.scope, "hash": c.doc_id, "category": c.category,
                                                       "key": c.key}) for c in self.concepts]
        chunk_docs = [(self._chunk_id(ch), ch.text, {"scope": self.scope, "hash": _hash(ch.text), "note": ch.note.key,
                                                     "day": ch.note.day or "", "category": "note"}) for ch in self.chunks]
        self.embedded = self.store.sync("concepts", self.scope, concept_docs)
        self.embedded += self.store.sync("chunks", self.scope, chunk_docs)
        log.debug("index: %d concepts, %d chunks, %d texts embedded", len(self.concepts), len(self.chunks), self.embedded)
        return self

    # -- search
    def search_concepts(self, query: str, k: int = 8, categories: list[str] | None = None,
                        vector: np.ndarray | None = None, vocab_text: str | None = None) -> list[ConceptHit]:
        """Concepts for a clinician's words: vocabulary matches first, then BM25 + dense fused by RRF."""
        pool = [c for c in self.concepts if not categories or c.category in categories]
        if not pool or not query.strip():
            return []
        allowed = {self._concept_id(c) for c in pool}
        lex = [self._concept_id(self.concepts[i]) for i, _ in self._concept_lex.search(query, k=50)]
        lex = [i for i in lex if i in allowed]
        where: dict[str, Any] = {"scope": self.scope}
        if categories:
            where = {"$and": [{"scope": self.scope}, {"category": {"$in": list(categories)}}]}
        vec = vector if vector is not None else self.store.embed_query(query)
        dense = [i for i, _ in self.store.dense("concepts", vec, where, min(k * 3, len(pool)))]
        fused = rrf(lex, dense)
        # vocabulary: a concept in a group the question names outranks any fused score
        matched = groups_in_text(vocab_text or query)
        phrase_of = {id(g): p for g, p in matched}
        hits = []
        for cid in allowed:
            c = self.concept_by_doc[cid]
            score = fused.get(cid, 0.0)
            best = None
            for g in c.groups:
                p = phrase_of.get(id(g))
                if p and (best is None or len(p) > len(best)):
                    best = p
            if best:
                score += 1.0 + len(best) / 100.0
            if score > 0:
                hits.append(ConceptHit(c, score, best))
        hits.sort(key=lambda h: (-h.score, -len(h.concept.facts), h.concept.key))
        return hits[:k]

    def search_chunks(self, query: str, k: int = 5, date_from: str | None = None, date_to: str | None = None,
                      vector: np.ndarray | None = None) -> list[ChunkHit]:
        """Note chunks for free text (BM25 + dense, RRF), optionally within note dates [from, to]."""
        if not self.chunks or not query.strip():
            return []

        def ok(ch: Chunk) -> bool:
            d = ch.note.day or ""
            return (not date_from or d >= date_from) and (not date_to or d <= date_to)

        pool_ids = {cid for cid, ch in self.chunk_by_id.items() if ok(ch)}
        if not pool_ids:
            return []
        lex_hits = self._chunk_lex.search(query, k=200)
        lex = [self._chunk_id(self.chunks[i]) for i, _ in lex_hits]
        lex = [i for i in lex if i in pool_ids][: k * 5]
        vec = vector if vector is not None else self.store.embed_query(query)
        n = min(len(self.chunks), max(k * 10, 50))
        dense = [i for i, _ in self.store.dense("chunks", vec, {"scope": self.scope}, n) if i in pool_ids]
        if len(dense) < k and len(pool_ids) < len(self.chunks):
            # a narrow date filter: rank the few chunks in range exactly
            dense = self._rank_exact(vec, pool_ids)
        fused = rrf(lex, dense[: k * 5])
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [ChunkHit(self.chunk_by_id[i], s) for i, s in ranked]

    def _rank_exact(self, vec: np.ndarray, ids: set[str]) -> list[str]:
        col = self.store.collection("chunks")
        got = col.get(ids=sorted(ids), include=["embeddings"])
        if got["embeddings"] is None or not len(got["ids"]):
            return []
        m = np.asarray(got["embeddings"], dtype=np.float32)
        sims = m @ vec
        order = np.argsort(-sims, kind="stable")
        return [got["ids"][i] for i in order]


_INDEXES: "OrderedDict[int, tuple[PatientRecord, str, PatientIndex]]" = OrderedDict()
_INDEX_LOCK = threading.Lock()


def patient_index(record: PatientRecord, settings: IndexSettings | None = None) -> PatientIndex:
    """The (built, cached) index of ``record``; the first call per record syncs the store."""
    settings = settings or current_settings()
    skey = settings.model_dump_json()
    with _INDEX_LOCK:
        hit = _INDEXES.get(id(record))
        if hit is not None and hit[0] is record and hit[1] == skey:
            _INDEXES.move_to_end(id(record))
            return hit[2]
    index = PatientIndex(record, get_store(settings)).build()
    with _INDEX_LOCK:
        _INDEXES[id(record)] = (record, skey, index)
        while len(_INDEXES) > 64:
            _INDEXES.popitem(last=False)
    return index
