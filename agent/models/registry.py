"""``load_backend(config)``: the one factory the agent and the CLI call."""
from __future__ import annotations

from chartwise.fhir.errors import ConfigError

from .base import ModelBackend
from .config import BackendConfig


def load_backend(config: BackendConfig) -> ModelBackend | None:
    """Build the backend the settings name. ``backend="none"`` returns ``None``: the agent then answers
    with the evidence pack alone."""
    if config.backend == "none":
        return None
    if config.backend == "transformers":
        from .hf_backend import TransformersBackend

        return TransformersBackend.load(config)
    if config.backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    if config.backend == "vertex":
        from .vertex import VertexBackend

        return VertexBackend(config)
    raise ConfigError(f"unknown backend {config.backend!r}: use transformers, openai, vertex or none")
