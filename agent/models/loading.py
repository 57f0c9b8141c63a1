"""Resolve and load MedGemma weights with transformers, turning every load failure into one line.

Multimodal checkpoints (``google/medgemma-27b-it``, ``google/medgemma-4b-it``, MedGemma 1.5 such as
``google/medgemma-1.5-4b-it``: a ``gemma3`` config with a vision tower) load with
``AutoModelForImageTextToText`` + ``AutoProcessor``; text-only ones (``google/medgemma-27b-text-it``:
``gemma3_text``) with ``AutoModelForCausalLM`` + ``AutoTokenizer``. The config decides, not the name.
"""
from __future__ import annotations

from typing import Any

from chartwise.fhir.errors import ConfigError
# hub_offline and looks_like_path are re-exported for the OpenAI backend's tokenizer loading.
from chartwise.tools.hf_loading import hub_offline, load_error, looks_like_path, resolve_model_source  # noqa: F401

from .config import BackendConfig


def resolve_source(config: BackendConfig) -> tuple[str, bool]:
    """Return (id or path to pass to from_pretrained, local_files_only)."""
    model = config.model.strip()
    if not model:
        raise ConfigError("no model set: pass --model google/medgemma-27b-it (or a local folder), env CHARTWISE_MODEL")
    source, local_only = resolve_model_source(model, config.local_files_only)
    return str(source), local_only


def torch_settings(config: BackendConfig) -> dict[str, Any]:
    """``dtype`` / ``device_map`` / ``quantization_config`` for from_pretrained."""
    import torch

    cuda = torch.cuda.is_available()
    if config.dtype == "auto":
        dtype = torch.bfloat16 if cuda and config.device != "cpu" else torch.float32
    else:
        dtype = getattr(torch, config.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.device == "auto":
        if cuda:
            kwargs["device_map"] = "auto"
    elif config.device.startswith("cuda"):
        if not cuda:
            raise ConfigError(f"device {config.device!r} requested but CUDA is not available: use --device cpu or auto")
        kwargs["device_map"] = config.device
    if config.quantize_4bit:
        if not cuda:
            raise ConfigError("quantize_4bit needs a CUDA GPU: unset CHARTWISE_QUANTIZE_4BIT or run on a GPU")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("quantize_4bit needs bitsandbytes: pip install bitsandbytes, or turn 4-bit off") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=dtype)
        kwargs.setdefault("device_map", "auto")
    return kwargs


def is_multimodal(hf_config: Any) -> bool:
    return getattr(hf_config, "vision_config", None) is not None


def load_pretrained(config: BackendConfig) -> tuple[Any, Any, bool]:
    """Load (model, processor-or-tokenizer, multimodal) through the path MedGemma ids use."""
    import transformers
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor,
                              AutoTokenizer)

    source, local_only = resolve_source(config)
    common: dict[str, Any] = {"local_files_only": local_only}
    if config.revision:
        common["revision"] = config.revision
    verbosity = transformers.logging.get_verbosity()
    try:
        hf_config = AutoConfig.from_pretrained(source, **common)
        multimodal = is_multimodal(hf_config)
        settings = torch_settings(config)
        if multimodal:
            processor = AutoProcessor.from_pretrained(source, **common)
            model = AutoModelForImageTextToText.from_pretrained(source, **common, **settings)
        else:
            processor = AutoTokenizer.from_pretrained(source, **common)
            model = AutoModelForCausalLM.from_pretrained(source, **common, **settings)
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, ImportError) as exc:  # hub errors subclass OSError / HTTPError
        raise load_error(config.model, exc, offline=local_only and not looks_like_path(config.model)) from None
    except Exception as exc:  # requests/httpx errors when the hub is unreachable
        raise load_error(config.model, exc, offline=False) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    if "device_map" not in settings and config.device not in ("auto", "cpu"):
        model = model.to(config.device)
    model.eval()
    return model, processor, multimodal
