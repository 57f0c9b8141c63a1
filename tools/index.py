"""The per-patient index: distinct concepts and note chunks in Chroma, with BM25 beside it.

Why it is cheap: thousands of Observations share a few dozen codes, so the index holds one
document per distinct **concept** (its vector embeds the code displays; BM25 also reads the codes
and the clinician words of its vocabulary group) rather than one per resource, plus sentence-aware
**note chunks** with character offsets (cited as ``DocumentReference/id#start-end``).  Every
stored vector's id is the hash of what it embeds: re-indexing an unchanged patient finds every id
present and embeds nothing, and a concept or chunk another record already has costs nothing.  A
chunk's vector is pooled from the vectors of its sentences, each embedded once per store and found
again by the hash of its text (:mod:`chartwise.tools.vectors`): copied-forward note sentences cost
nothing after their first appearance.

Storage: an embedded ``chromadb.PersistentClient`` under :class:`IndexSettings.path`, or a
``chromadb.HttpClient`` when ``host``/``port`` are set; telemetry is off either way.
"""
from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, NamedTuple

import bm25s
import numpy as np

from chartwise.fhir.errors import ConfigError
from chartwise.fhir.facts import Category, ClinicalFact
from chartwise.fhir.store import PatientRecord

from .config import IndexSettings
from .embedding import SentenceTransformerEmbedding
from .vectors import VectorCache, pool, stored_vectors, text_hash
from .vocabulary import Group, groups_for_display, groups_in_text, words

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

#: Layout version in the collection names: ``v2`` stores content-addressed vectors (no text, no patient
#: key); collections of earlier layouts are left alone and can be deleted.
SCHEMA = "v2"
#: Note chunks aim at this many characters (sentences are never split unless longer than this).
CHUNK_CHARS = 360
RRF_K = 60


_hash = text_hash


class Doc(NamedTuple):
    """One stored vector: its content-address id, the text it embeds, and the parts it is pooled from instead (if any)."""

    id: str
    text: str
    parts: tuple[str, ...] = ()


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
    #: what lexical search reads: displays, the clinician words of its vocabulary groups, the category
    text: str = ""

    @cached_property
    def dense_text(self) -> str:
        """What is embedded: the record's own words for it (clinician words reach it lexically)."""
        return " | ".join(self.displays)

    @cached_property
    def doc_id(self) -> str:
        """Content address of its vector: shared by every record holding the same concept."""
        return f"{_hash(self.key)}{_hash(self.dense_text)}"


@dataclass
class Chunk:
    """A span of a note's decoded text."""

    note: ClinicalFact
    start: int
    end: int
    text: str
    #: the chunk's sentences (their vectors pool into the chunk's vector)
    sentences: tuple[str, ...] = ()

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
    group: list[tuple[int, int]] = []

    def close() -> None:
        a, b = group[0][0], group[-1][1]
        chunks.append(Chunk(note, a, b, text[a:b], tuple(text[x:y] for x, y in group)))

    for a, b in sents:
        if group and b - group[0][0] > size:
            close()
            group = []
        group.append((a, b))
    if group:
        close()
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
        self.vector_cache = VectorCache(lambda: self.collection("parts"), self.embedder, self.max_batch)

    def collection(self, kind: str) -> Any:
        with self._lock:
            if kind not in self._collections:
                safe_model = re.sub(r"[^A-Za-z0-9]+", "-", self.settings.model)[-40:].strip("-")
                name = f"{self.settings.prefix}-{kind}-{SCHEMA}-{safe_model}"[:63].strip("-")
                self._collections[kind] = self.client.get_or_create_collection(
                    name=name, embedding_function=self.embedder, metadata={"hnsw:space": "cosine"})
            return self._collections[kind]

    # -- content-addressed storage
    def sync(self, kind: str, docs: Iterable[Doc]) -> int:
        """Make sure ``kind`` holds a vector for every doc; returns how many texts had to be embedded.

        Ids are content hashes, so a stored vector is shared by every record (and every re-index)
        that asks for the same document: only ids never stored before are computed.  A doc without
        parts is embedded as a whole; one with parts is pooled from the parts' cached vectors.
        """
        col = self.collection(kind)
        wanted = {d.id: d for d in docs}
        ids = list(wanted)
        present: set[str] = set()
        for i in range(0, len(ids), self.max_batch):
            present.update(col.get(ids=ids[i:i + self.max_batch], include=[])["ids"])
        new = [d for i, d in wanted.items() if i not in present]
        if not new:
            return 0
        vectors: dict[str, np.ndarray] = {}
        whole = [d for d in new if not d.parts]
        if whole:
            vectors.update(zip([d.id for d in whole], self.embedder([d.text for d in whole])))
        pooled = [d for d in new if d.parts]
        embedded = len(whole)
        if pooled:
            found, n = self.vector_cache.vectors([p for d in pooled for p in d.parts])
            embedded += n
            for d in pooled:
                vectors[d.id] = pool([found[_hash(p)] for p in d.parts], [len(p) for p in d.parts])
        for i in range(0, len(new), self.max_batch):
            batch = new[i:i + self.max_batch]
            col.add(ids=[d.id for d in batch], embeddings=[vectors[d.id] for d in batch])
        return embedded

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

    def dense(self, kind: str, vector: np.ndarray, ids: list[str], k: int) -> list[tuple[str, float]]:
        """The ``k`` of ``ids`` nearest to ``vector`` (cosine distance), nearest first."""
        if not ids or k <= 0:
            return []
        col = self.collection(kind)
        res = col.query(query_embeddings=[vector], ids=ids, n_results=min(k, len(ids)), include=["distances"])
        found = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else [0.0] * len(found)
        return list(zip(found, dists))

    def embeddings(self, kind: str, ids: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id."""
        return stored_vectors(self.collection(kind), ids, self.max_batch)


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
    """One patient's concepts and note chunks, searchable by hybrid (BM25 + dense, RRF) retrieval.

    Vectors live in the store under content hashes (a concept's key and displays; a chunk's text),
    shared with every other record that has the same document; what belongs to this patient is the
    set of ids held here, and dense search is restricted to it.
    """

    def __init__(self, record: PatientRecord, store: IndexStore | None = None) -> None:
        self.record = record
        self.store = store or get_store()
        self.facts = record.facts
        self.concepts = build_concepts(self.facts)
        self.concept_by_doc = {c.doc_id: c for c in self.concepts}
        self.concept_of_fact = {f.key: c for c in self.concepts for f in c.facts}
        self.notes = [f for f in self.facts if f.category == Category.note and f.text]
        self.chunks = [ch for note in self.notes for ch in chunk_note(note)]
        #: chunks by the content hash of their text (copied-forward text: one vector, many chunks), newest note first
        self.chunks_by_hash: dict[str, list[Chunk]] = {}
        for ch in sorted(self.chunks, key=lambda ch: (ch.note.day or "", ch.note.key), reverse=True):
            self.chunks_by_hash.setdefault(_hash(ch.text), []).append(ch)
        self.embedded = 0
        self.last_day = max((f.day for f in self.facts if f.day), default=None)
        self._concept_lex = Lexical([c.text for c in self.concepts])
        self._chunk_lex = Lexical([f"{ch.note.label} {ch.text}" for ch in self.chunks])

    def build(self) -> "PatientIndex":
        """Bring the stored vectors up to date with the record (embeds only what the store has never seen)."""
        concept_docs = [Doc(c.doc_id, c.dense_text) for c in self.concepts]
        chunk_docs = [Doc(h, chs[0].text, chs[0].sentences) for h, chs in self.chunks_by_hash.items()]
        self.embedded = self.store.sync("concepts", concept_docs)
        self.embedded += self.store.sync("chunks", chunk_docs)
        log.debug("index: %d concepts, %d chunks (%d distinct), %d texts embedded", len(self.concepts), len(self.chunks),
                  len(self.chunks_by_hash), self.embedded)
        return self

    # -- search
    def search_concepts(self, query: str, k: int = 8, categories: list[str] | None = None,
                        vector: np.ndarray | None = None, vocab_text: str | None = None) -> list[ConceptHit]:
        """Concepts for a clinician's words: vocabulary matches first, then BM25 + dense fused by RRF."""
        pool = [c for c in self.concepts if not categories or c.category in categories]
        if not pool or not query.strip():
            return []
        allowed = {c.doc_id for c in pool}
        lex = [self.concepts[i].doc_id for i, _ in self._concept_lex.search(query, k=50)]
        lex = [i for i in lex if i in allowed]
        vec = vector if vector is not None else self.store.embed_query(query)
        dense = [i for i, _ in self.store.dense("concepts", vec, sorted(allowed), k * 3)]
        fused = rrf(lex, dense)
        # vocabulary: a concept in a group the question names outranks any fused score
        matched = groups_in_text(vocab_text or query)
        phrase_of = {id(g): p for g, p in matched}
        hits = []
        for cid in allowed:
            c = self.concept_by_doc[cid]
            score = fused.get(cid, 0.0)
            best, best_group = None, None
            for g in c.groups:
                p = phrase_of.get(id(g))
                if p and (best is None or len(p) > len(best)):
                    best, best_group = p, g
            if best:
                score += 1.0 + len(best) / 100.0
                if best_group is not None and best_group.kind == c.category:
                    score += 0.05  # a lab group's results outrank its orders (ServiceRequest with the same code)
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

        in_range = {h: [ch for ch in chs if ok(ch)] for h, chs in self.chunks_by_hash.items()}
        in_range = {h: chs for h, chs in in_range.items() if chs}
        if not in_range:
            return []
        lex_hits = self._chunk_lex.search(query, k=200)
        lex = [self.chunks[i].citation for i, _ in lex_hits if ok(self.chunks[i])][: k * 5]
        vec = vector if vector is not None else self.store.embed_query(query)
        ranked_hashes = [h for h, _ in self.store.dense("chunks", vec, sorted(in_range), max(k * 10, 50))]
        # a text shared by several chunks ranks them together, newest note first
        dense = [ch.citation for h in ranked_hashes for ch in in_range[h]][: k * 5]
        fused = rrf(lex, dense)
        by_citation = {ch.citation: ch for chs in in_range.values() for ch in chs}
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [ChunkHit(by_citation[i], s) for i, s in ranked]


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
