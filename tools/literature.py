"""The literature corpus: PubMed abstracts, indexed in Chroma, searched hybrid, cited ``PMID:n``.

The default corpus is a slice of PubMedQA shipped in the package (``data/literature_sample.jsonl``,
MIT, see ``data/LICENSE.pubmedqa``).  Any JSON or JSONL of ``{pmid, title, abstract}`` works (the
PubMedQA layout ``{pmid: {QUESTION, CONTEXTS, YEAR, ...}}`` too).
"""
from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from chartwise.fhir.errors import InputError

from .config import IndexSettings
from .index import Doc, IndexStore, Lexical, _hash, get_store, rrf

SAMPLE = "literature_sample.jsonl"


class Paper(BaseModel):
    pmid: str
    title: str = ""
    abstract: str = ""
    year: str | None = None

    @property
    def citation(self) -> str:
        return f"PMID:{self.pmid}"


def sample_corpus_path() -> Path:
    return Path(str(resources.files("chartwise").joinpath("data", SAMPLE)))


def _paper(pmid: object, obj: dict) -> Paper:
    ctx = obj.get("abstract") or obj.get("CONTEXTS") or obj.get("contexts") or ""
    if isinstance(ctx, list):
        ctx = " ".join(str(c) for c in ctx)
    long = obj.get("LONG_ANSWER") or obj.get("conclusion")
    if long and isinstance(long, str) and long not in ctx:
        ctx = f"{ctx} {long}".strip()
    title = obj.get("title") or obj.get("QUESTION") or ""
    year = obj.get("year") or obj.get("YEAR")
    return Paper(pmid=str(obj.get("pmid") or pmid), title=str(title), abstract=str(ctx), year=str(year) if year else None)


def load_corpus(path: str | Path | None = None) -> list[Paper]:
    """Papers from a JSON / JSONL file (default: the shipped sample)."""
    p = Path(path) if path else sample_corpus_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"{p}: cannot read the literature corpus ({err.strerror})") from err
    papers: list[Paper] = []
    stripped = text.lstrip()
    try:
        if stripped.startswith("{") and "\n{" not in stripped.strip():
            data = json.loads(text)
            items = data.items() if all(isinstance(v, dict) for v in data.values()) else [(None, data)]
            papers = [_paper(k, v) for k, v in items]
        elif stripped.startswith("["):
            papers = [_paper(None, v) for v in json.loads(text)]
        else:
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        papers.append(_paper(None, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise InputError(f"{p}, line {n}: not JSON ({err.msg})") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{p}: not JSON ({err.msg} at line {err.lineno})") from err
    papers = [x for x in papers if x.pmid and x.pmid != "None"]
    if not papers:
        raise InputError(f"{p}: no papers with a pmid")
    return papers


class LiteratureIndex:
    def __init__(self, papers: list[Paper], store: IndexStore) -> None:
        self.papers = papers
        self.store = store
        # content-addressed: the same paper in two corpora is one stored vector
        self.by_id = {f"{_hash(p.pmid)}{_hash(self._text(p))}": p for p in papers}
        self._lex = Lexical([f"{p.title} {p.abstract}" for p in self.by_id.values()])
        self._ids = list(self.by_id)
        self.embedded = store.sync("literature", [Doc(i, self._text(p)) for i, p in self.by_id.items()])

    @staticmethod
    def _text(p: Paper) -> str:
        return f"{p.title}. {p.abstract}"[:2000]

    def search(self, query: str, k: int = 5) -> list[tuple[Paper, float]]:
        lex = [self._ids[i] for i, _ in self._lex.search(query, k=50)]
        vec = self.store.embed_query(query)
        dense = [i for i, _ in self.store.dense("literature", vec, self._ids, 50)]
        fused = rrf(lex, dense)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [(self.by_id[i], s) for i, s in ranked]


_CACHE: dict[tuple[str, str], LiteratureIndex] = {}
_LOCK = threading.Lock()


def literature_index(corpus: str | Path | None = None, settings: IndexSettings | None = None) -> LiteratureIndex:
    store = get_store(settings)
    path = str(Path(corpus).resolve()) if corpus else str(sample_corpus_path())
    key = (path, store.settings.model_dump_json())
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = LiteratureIndex(load_corpus(path), store)
        return _CACHE[key]
