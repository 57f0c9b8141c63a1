"""Tiny random-weight Gemma 3 checkpoints through the exact MedGemma loading path."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from _tiny_gemma import build_tiny_multimodal, build_tiny_text
from chartwise.agent.models import BackendConfig, Generation, StreamChunk, collect, load_backend
from chartwise.agent.models.hf_backend import TransformersBackend
from chartwise.fhir.errors import ConfigError

IMAGES = Path("/work/shared/data/images")
PNG = IMAGES / "nih-cxr14" / "00000001_000.png"
DICOM = IMAGES / "pydicom-testfiles" / "CT_small.dcm"


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny_gemma")
    return {"text": build_tiny_text(base / "text"), "mm": build_tiny_multimodal(base / "mm")}


@pytest.fixture(scope="module")
def mm(tiny_dirs) -> TransformersBackend:
    backend = load_backend(BackendConfig(backend="transformers", model=str(tiny_dirs["mm"]), device="cpu"))
    assert isinstance(backend, TransformersBackend)
    return backend


@pytest.fixture(scope="module")
def text(tiny_dirs) -> TransformersBackend:
    backend = load_backend(BackendConfig(backend="transformers", model=str(tiny_dirs["text"]), device="cpu"))
    assert isinstance(backend, TransformersBackend)
    return backend


def test_loads_through_medgemma_classes(mm, text):
    assert type(mm.model).__name__ == "Gemma3ForConditionalGeneration"
    assert type(mm.processor).__name__ == "Gemma3Processor"
    assert type(mm.processor.image_processor).__name__ == "Gemma3ImageProcessorPil"
    assert type(text.model).__name__ == "Gemma3ForCausalLM"
    assert mm.capabilities.vision and not text.capabilities.vision
    assert not mm.capabilities.native_tool_calls
    assert mm.capabilities.max_context == 131072 and mm.capabilities.max_output == 8192


def test_generate_one_image(mm):
    gen = mm.generate([{"role": "user", "content": "Describe the radiograph."}], images=[PNG], max_new_tokens=6)
    assert isinstance(gen, Generation)
    assert gen.usage.completion_tokens <= 6 and gen.usage.prompt_tokens > 4
    assert gen.finish_reason in {"stop", "length"}


def test_generate_two_images_png_and_dicom(mm):
    msgs = [{"role": "system", "content": "You are a radiologist."}, {"role": "user", "content": "Compare."}]
    one = mm.generate(msgs, images=[PNG], max_new_tokens=4)
    two = mm.generate(msgs, images=[PNG, DICOM], max_new_tokens=4)
    per_image = mm.processor.image_seq_length + 4  # soft tokens + boi/eoi + the blank lines around them
    assert two.usage.prompt_tokens - one.usage.prompt_tokens == pytest.approx(per_image, abs=3)
    # count_tokens agrees with what the model was given
    from chartwise.agent.models.types import attach_images, as_messages

    assert mm.count_tokens(attach_images(as_messages(msgs), [PNG, DICOM])) == two.usage.prompt_tokens


def test_generate_fhir_attachment_image(mm):
    att = {"contentType": "image/png", "data": base64.b64encode(PNG.read_bytes()).decode()}
    gen = mm.generate("What is shown?", images=[att], max_new_tokens=3)
    assert gen.usage.prompt_tokens > mm.processor.image_seq_length


def test_generate_text_only_both_models(mm, text):
    for backend in (mm, text):
        gen = backend.generate("Summarize the chart.", max_new_tokens=5)
        assert gen.usage.completion_tokens <= 5
        assert backend.count_tokens([{"role": "user", "content": "Summarize the chart."}]) == gen.usage.prompt_tokens


def test_greedy_is_deterministic_and_stream_matches(text):
    a = text.generate("HbA1c trend?", max_new_tokens=8)
    b = text.generate("HbA1c trend?", max_new_tokens=8)
    assert a.text == b.text
    chunks = list(text.generate("HbA1c trend?", max_new_tokens=8, stream=True))
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == a.usage.completion_tokens
    assert collect(chunks).text.strip() == a.text


def test_text_only_model_rejects_images(text):
    with pytest.raises(ConfigError, match="text-only"):
        text.generate("x", images=[PNG], max_new_tokens=2)


def test_thoughts_stripped_from_model_output(text):
    raw = "<unused94>thought\nlet me think<unused95>The answer.<end_of_turn>"
    visible, thoughts = text.clean(raw)
    assert visible == "The answer." and "let me think" in thoughts
    assert text.clean("<unused94>never closed")[0] == ""


def test_thinking_instruction_added_for_27b(tiny_dirs):
    from chartwise.agent.models.hf_backend import TransformersBackend

    base = load_backend(BackendConfig(model=str(tiny_dirs["text"]), device="cpu", thinking=True))
    assert isinstance(base, TransformersBackend)
    prompt, _ = base.render_prompt([{"role": "user", "content": "hi"}])
    assert "think silently if needed" in prompt


# -- one-line load errors ---------------------------------------------------------------------------
def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert "\n" not in msg and msg
    return msg


def test_missing_local_path():
    with pytest.raises(ConfigError) as ei:
        load_backend(BackendConfig(model="/nonexistent/medgemma-27b-it"))
    msg = _one_line(ei.value)
    assert "does not exist" in msg and "hub id" in msg


def test_folder_without_weights(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_backend(BackendConfig(model=str(tmp_path)))
    assert "config.json" in _one_line(ei.value)


def test_hub_id_offline_without_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as ei:
        load_backend(BackendConfig(model="google/medgemma-27b-it"))
    msg = _one_line(ei.value)
    assert "hf auth login" in msg and "licence" in msg and "local folder" in msg and "HF_HUB_OFFLINE" in msg


def test_wrong_model_id(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for bad in ("medgemma", "google/medgemma/27b/it/extra?"):
        with pytest.raises(ConfigError) as ei:
            load_backend(BackendConfig(model=bad))
        assert "google/medgemma-27b-it" in _one_line(ei.value)
    with pytest.raises(ConfigError) as ei:
        load_backend(BackendConfig(model="google/not-a-medgemma"))
    assert "hf auth login" in _one_line(ei.value)


def test_hub_errors_translated():
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from chartwise.agent.models.loading import load_error

    import httpx

    resp = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co/x"))
    gated = load_error("google/medgemma-27b-it", GatedRepoError("403 gated\nmore lines", response=resp), offline=False)
    assert "gated" in _one_line(gated) and "hf auth login" in str(gated)
    missing = load_error("google/medgemma-99b", RepositoryNotFoundError("404\nx", response=resp), offline=False)
    assert "not found" in _one_line(missing)
    generic = load_error("google/medgemma-27b-it", OSError("disk\nfull"), offline=False)
    assert "disk" in _one_line(generic)
