"""MedSigLIP (``google/medsiglip-448``) loaded through ``transformers``: image and text embeddings and
SigLIP's independent sigmoid image-text scores.

Loading follows the MedGemma backend's rules (the shared ``chartwise.tools.hf_loading``): a hub id or a local folder saved with
``save_pretrained``; ``HF_HUB_OFFLINE=1`` means local files only; bfloat16 on a CUDA GPU, float32 on CPU;
every load failure (weights absent, gated repo, wrong id, missing folder) is one ``ConfigError`` line.
The processor is always the PIL-based ``SiglipImageProcessorPil`` (``backend="pil"``), so no
torchvision is needed; texts are padded to ``max_length`` as SigLIP was trained.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from chartwise.fhir.errors import ConfigError

from .hf_loading import looks_like_path, resolve_model_source
from .hf_loading import load_error as shared_load_error

DEFAULT_SIGLIP_MODEL = "google/medsiglip-448"
ENV_MODEL = "CHARTWISE_SIGLIP_MODEL"


class SiglipSettings(BaseModel):
    """Where the MedSigLIP weights come from and where they run."""

    model: str = Field(default="", description=f"hub id or local folder; empty: env {ENV_MODEL} or {DEFAULT_SIGLIP_MODEL}")
    revision: str | None = None
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    local_files_only: bool | None = Field(default=None, description="None: follow HF_HUB_OFFLINE")
    batch_size: int = Field(default=16, ge=1, le=512)

    def resolved_model(self) -> str:
        return (self.model or os.environ.get(ENV_MODEL, "") or DEFAULT_SIGLIP_MODEL).strip()


def load_error(model: str, exc: BaseException, *, offline: bool) -> ConfigError:
    """A hub or file error from ``from_pretrained`` as one line naming the setting to change."""
    return shared_load_error(model, exc, offline=offline, noun="image model", example=DEFAULT_SIGLIP_MODEL,
                             local_hint=f"--model /path/to/medsiglip (env {ENV_MODEL})")


def resolve_source(settings: SiglipSettings) -> tuple[str, bool]:
    """(id or folder for from_pretrained, local_files_only)."""
    model = settings.resolved_model()
    source, local_only = resolve_model_source(model, settings.local_files_only, noun="image model",
                                              example=DEFAULT_SIGLIP_MODEL, setting=f" (--model or env {ENV_MODEL})")
    return (str(source.resolve()) if isinstance(source, Path) else source), local_only


def torch_settings(settings: SiglipSettings) -> tuple[Any, str]:
    """(dtype, device): bfloat16 on a CUDA GPU, float32 on CPU, unless set."""
    import torch

    cuda = torch.cuda.is_available()
    device = settings.device
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    elif device.startswith("cuda") and not cuda:
        raise ConfigError(f"device {settings.device!r} requested but CUDA is not available: use --device cpu or auto")
    if settings.dtype == "auto":
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        dtype = getattr(torch, settings.dtype)
    return dtype, device


class SiglipEncoder:
    """A loaded SigLIP model + processor: normalized embeddings and sigmoid image-text probabilities."""

    def __init__(self, model: Any, processor: Any, model_id: str, *, device: str = "cpu", batch_size: int = 16) -> None:
        self.model, self.processor, self.model_id = model, processor, model_id
        self.device, self.batch_size = device, batch_size
        cfg = model.config
        self.image_size = int(getattr(cfg.vision_config, "image_size", 448))
        tok_max = int(getattr(processor.tokenizer, "model_max_length", 64) or 64)
        self.max_text_length = min(tok_max if tok_max < 100_000 else 64, int(cfg.text_config.max_position_embeddings))
        self.dim = int(getattr(cfg.vision_config, "hidden_size", 0))
        self._lock = threading.Lock()  # one forward at a time per loaded model (tools may run in parallel)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp().item())

    @property
    def logit_bias(self) -> float:
        return float(self.model.logit_bias.detach().float().item())

    def _dtype(self):
        return next(self.model.parameters()).dtype

    def embed_images(self, images: list[Any]) -> np.ndarray:
        """L2-normalized image embeddings, shape (n, dim), float32. ``images``: PIL images (RGB)."""
        import torch

        out = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            inputs = self.processor(images=batch, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype=self._dtype())
            with self._lock, torch.inference_mode():
                feats = self.model.get_image_features(pixel_values=pixels).pooler_output
            out.append(_normalize(feats.float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalized text embeddings, shape (n, dim), float32 (padding to max_length, as trained)."""
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t.lower() if getattr(self.processor.tokenizer, "do_lower_case", False) else t
                     for t in texts[start:start + self.batch_size]]
            inputs = self.processor(text=batch, padding="max_length", truncation=True,
                                    max_length=self.max_text_length, return_tensors="pt")
            kwargs = {"input_ids": inputs["input_ids"].to(self.device)}
            with self._lock, torch.inference_mode():
                feats = self.model.get_text_features(**kwargs).pooler_output
            out.append(_normalize(feats.float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def probabilities(self, image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        """sigmoid(cos * exp(logit_scale) + logit_bias), shape (n_images, n_texts): independent per pair."""
        logits = image_emb @ text_emb.T * self.logit_scale + self.logit_bias
        return 1.0 / (1.0 + np.exp(-logits))


def _normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


_CACHE: dict[tuple, SiglipEncoder] = {}
_CACHE_LOCK = threading.Lock()


def load_siglip(settings: SiglipSettings | None = None) -> SiglipEncoder:
    """Load (once per process and settings) MedSigLIP or any SigLIP checkpoint: AutoModel + AutoProcessor."""
    settings = settings or SiglipSettings()
    source, local_only = resolve_source(settings)
    dtype, device = torch_settings(settings)
    key = (source, settings.revision, device, str(dtype), local_only)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import transformers
        from transformers import AutoConfig, AutoModel, AutoProcessor

        common: dict[str, Any] = {"local_files_only": local_only}
        if settings.revision:
            common["revision"] = settings.revision
        verbosity = transformers.logging.get_verbosity()
        bars = transformers.utils.logging.is_progress_bar_enabled()
        model_name = settings.resolved_model()
        try:
            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            hf_config = AutoConfig.from_pretrained(source, **common)
            if getattr(hf_config, "vision_config", None) is None or getattr(hf_config, "text_config", None) is None:
                raise ConfigError(f"image model {model_name!r} is a {hf_config.model_type!r} checkpoint, not a SigLIP "
                                  f"image-text model (use {DEFAULT_SIGLIP_MODEL})")
            processor = AutoProcessor.from_pretrained(source, backend="pil", **common)
            model = AutoModel.from_pretrained(source, dtype=dtype, **common)
        except ConfigError:
            raise
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise load_error(model_name, exc, offline=local_only and not looks_like_path(model_name)) from None
        except Exception as exc:  # noqa: BLE001 - requests/httpx errors when the hub is unreachable
            raise load_error(model_name, exc, offline=False) from None
        finally:
            transformers.logging.set_verbosity(verbosity)
            if bars:
                transformers.utils.logging.enable_progress_bar()
        for attr in ("get_image_features", "get_text_features", "logit_scale", "logit_bias"):
            if not hasattr(model, attr):
                raise ConfigError(f"image model {model_name!r} ({type(model).__name__}) lacks {attr}: not a SigLIP "
                                  f"image-text model (use {DEFAULT_SIGLIP_MODEL})")
        model = model.to(device).eval()
        enc = SiglipEncoder(model, processor, model_name, device=device, batch_size=settings.batch_size)
        _CACHE[key] = enc
        return enc


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
