"""Backend settings: one typed object, filled from defaults < config file < environment < flags.

The CLI builds a :class:`BackendConfig` from its flags with :func:`resolve_config`; lower layers
receive the object and never read flags themselves.

Environment variables (each overrides the config file):

========================  ==========================================================
``CHARTWISE_BACKEND``     ``transformers`` | ``openai`` | ``vertex`` | ``none``
``CHARTWISE_MODEL``       hub id or local path (transformers), served model name (openai)
``CHARTWISE_BASE_URL``    OpenAI-compatible base URL, e.g. ``http://host:8000/v1``
``CHARTWISE_API_KEY``     API key (else the variable named by ``api_key_env``, default ``OPENAI_API_KEY``)
``CHARTWISE_DEVICE``      ``auto`` | ``cpu`` | ``cuda`` | ``cuda:1`` ...
``CHARTWISE_DTYPE``       ``auto`` | ``bfloat16`` | ``float16`` | ``float32``
``CHARTWISE_QUANTIZE_4BIT``  ``1`` to load in 4-bit (bitsandbytes + CUDA)
``CHARTWISE_THINKING``    ``1`` to let MedGemma 27B think silently (thoughts are stripped)
``CHARTWISE_MAX_CONTEXT`` / ``CHARTWISE_MAX_OUTPUT``  token limits
``CHARTWISE_TIMEOUT`` / ``CHARTWISE_RETRIES`` / ``CHARTWISE_CONCURRENCY``  HTTP client settings
``CHARTWISE_TOKENIZER``   tokenizer path or id used to count tokens for the openai backend
``CHARTWISE_VERTEX_PROJECT`` / ``CHARTWISE_VERTEX_REGION`` / ``CHARTWISE_VERTEX_ENDPOINT``
``CHARTWISE_CONFIG``      path of a TOML config file (default ``./chartwise.toml`` when present)
========================  ==========================================================

The config file is TOML with the same field names, at the top level or under ``[backend]``.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chartwise.fhir.errors import ConfigError

BackendName = Literal["transformers", "openai", "vertex", "none"]

DEFAULT_MODEL = "google/medgemma-27b-it"
DEFAULT_CONFIG_FILE = "chartwise.toml"


class BackendConfig(BaseModel):
    """Everything needed to reach a model. Unknown keys are an error so typos surface."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    backend: BackendName = "transformers"
    model: str = DEFAULT_MODEL
    # transformers
    device: str = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    quantize_4bit: bool = False
    revision: str | None = None
    local_files_only: bool | None = None  # None: follow HF_HUB_OFFLINE
    # OpenAI-compatible
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    api_key_env: str = "OPENAI_API_KEY"
    tokenizer: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    concurrency: int = Field(default=4, ge=1)
    # Vertex AI
    vertex_project: str | None = None
    vertex_region: str | None = None
    vertex_endpoint: str | None = None
    vertex_dedicated_domain: str | None = None
    # generation
    thinking: bool = False
    max_context: int = Field(default=131_072, gt=0)
    max_output: int = Field(default=8_192, gt=0)
    image_max_side: int = Field(default=896, gt=0)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else v

    def resolved_api_key(self) -> str | None:
        """The API key: the explicit setting, else ``CHARTWISE_API_KEY``, else ``$api_key_env``."""
        return self.api_key or os.environ.get("CHARTWISE_API_KEY") or os.environ.get(self.api_key_env) or None


_ENV_FIELDS: dict[str, str] = {
    "CHARTWISE_BACKEND": "backend",
    "CHARTWISE_MODEL": "model",
    "CHARTWISE_BASE_URL": "base_url",
    "CHARTWISE_API_KEY": "api_key",
    "CHARTWISE_DEVICE": "device",
    "CHARTWISE_DTYPE": "dtype",
    "CHARTWISE_QUANTIZE_4BIT": "quantize_4bit",
    "CHARTWISE_THINKING": "thinking",
    "CHARTWISE_MAX_CONTEXT": "max_context",
    "CHARTWISE_MAX_OUTPUT": "max_output",
    "CHARTWISE_TIMEOUT": "timeout_s",
    "CHARTWISE_RETRIES": "retries",
    "CHARTWISE_CONCURRENCY": "concurrency",
    "CHARTWISE_TOKENIZER": "tokenizer",
    "CHARTWISE_VERTEX_PROJECT": "vertex_project",
    "CHARTWISE_VERTEX_REGION": "vertex_region",
    "CHARTWISE_VERTEX_ENDPOINT": "vertex_endpoint",
}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    return {field: env[var] for var, field in _ENV_FIELDS.items() if env.get(var, "") != ""}


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    section = data.get("backend", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{p}: [backend] must be a table")
    return dict(section)


def resolve_config(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> BackendConfig:
    """Merge defaults, the TOML file, environment variables and CLI flags (``None`` flags are unset)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    source = "settings"
    file = config_file or env.get("CHARTWISE_CONFIG")
    if file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        file = DEFAULT_CONFIG_FILE
    if file:
        values.update(read_config_file(file))
        source = str(file)
    values.update(env_overrides(env))
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return BackendConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "?"
        env_name = next((v for v, f in _ENV_FIELDS.items() if f == field), None)
        hint = f" (flag --{field.replace('_', '-')}, env {env_name}, or {source})" if env_name else f" ({source})"
        raise ConfigError(f"backend setting {field!r}: {err['msg']}{hint}") from None
