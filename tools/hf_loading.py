"""What every ``from_pretrained`` caller shares: hub/offline detection, id-or-folder, one-line errors.

Used by the MedGemma backends (``chartwise.agent.models.loading``) and the MedSigLIP loader
(``chartwise.tools.siglip``), so a missing, gated or mistyped model reads the same everywhere.
"""
from __future__ import annotations

import os
from pathlib import Path

from chartwise.fhir.errors import ConfigError

_TRUTHY = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def looks_like_path(model: str) -> bool:
    return (model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model or model.count("/") > 1
            or Path(model).expanduser().exists())


def what_to_do(model: str, local_hint: str) -> str:
    return (f"accept the licence at https://huggingface.co/{model} and run `hf auth login` "
            f"(weights then download on first use), or pass a local folder with {local_hint}")


def load_error(model: str, exc: BaseException, *, offline: bool, noun: str = "model",
               example: str = "google/medgemma-27b-it",
               local_hint: str = "--model /path/to/weights (env CHARTWISE_MODEL)") -> ConfigError:
    """Translate a hub or file error from ``from_pretrained`` into a one-line ConfigError."""
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    todo = what_to_do(model, local_hint)
    if isinstance(exc, GatedRepoError):
        return ConfigError(f"{noun} {model!r} is gated: {todo}")
    if isinstance(exc, RepositoryNotFoundError):
        return ConfigError(f"{noun} {model!r} not found on the Hugging Face Hub (check the id, e.g. "
                           f"{example}) or it is gated: {todo}")
    if isinstance(exc, RevisionNotFoundError):
        return ConfigError(f"{noun} {model!r}: revision not found (fix the revision setting)")
    if offline or isinstance(exc, LocalEntryNotFoundError):
        return ConfigError(f"{noun} {model!r}: weights are not in the local Hugging Face cache and the hub is "
                           f"offline (HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE and {todo}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"{noun} {model!r} could not be loaded ({first[:200]}); {todo}")


def resolve_model_source(model: str, local_files_only: bool | None, *, noun: str = "model",
                         example: str = "google/medgemma-27b-it", setting: str = "") -> tuple[Path | str, bool]:
    """(a checked local folder, or a hub id ``owner/name``; local_files_only) for ``from_pretrained``.

    A folder must exist and hold ``config.json``; ``setting`` (e.g. " (--model or env X)") is named in errors.
    """
    local_only = local_files_only if local_files_only is not None else hub_offline()
    if looks_like_path(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise ConfigError(f"{noun} folder {str(path)!r} does not exist: pass the folder that holds config.json "
                              f"and the weights{setting}, or a hub id such as {example}")
        if not (path / "config.json").is_file():
            raise ConfigError(f"{noun} folder {str(path)!r} has no config.json: pass a folder saved with "
                              f"save_pretrained or downloaded with `hf download {example} --local-dir DIR`")
        return path, True
    if model.count("/") != 1:
        raise ConfigError(f"{noun} {model!r} is neither a hub id (owner/name, e.g. {example}) nor an "
                          f"existing folder{setting}")
    return model, local_only
