"""Thinking stripper, image loading, settings and token budgets."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from chartwise.agent.models import BackendConfig, TokenBudget, resolve_config, strip_thoughts
from chartwise.agent.models.budget import estimate_tokens
from chartwise.agent.models.images import image_to_data_url, load_image
from chartwise.agent.models.thinking import ThoughtStripper, add_think_instruction
from chartwise.fhir.errors import ConfigError, InputError

IMAGES = Path("/work/shared/data/images")


# -- thinking -------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,visible", [
    ("<unused94>thought\nplan<unused95>Answer.", "Answer."),
    ("Before <unused94>x<unused95>after", "Before after"),
    ("A<unused94>never closed", "A"),
    ("<unused94>a<unused95>B<unused94>c<unused95>D", "BD"),
    ("stray end<unused95> kept", "stray end kept"),
    ("no thoughts", "no thoughts"),
])
def test_strip_thoughts(raw, visible):
    assert strip_thoughts(raw) == visible


def _stream(text: str, cuts: list[int]) -> str:
    s = ThoughtStripper()
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in [*points, len(text)]:
        pieces.append(text[prev:p])
        prev = p
    return "".join(s.feed(p) for p in pieces) + s.flush()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["<unused94>", "<unused95>", "abc", "<", "unused", " ", "9", ">x", "<unused9"]),
                max_size=12),
       st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_stream_stripper_matches_batch(parts, cuts):
    text = "".join(parts)
    assert _stream(text, cuts) == strip_thoughts(text)


def test_think_instruction():
    assert add_think_instruction(None) == "SYSTEM INSTRUCTION: think silently if needed."
    assert add_think_instruction("You are X.").endswith("You are X.")
    once = add_think_instruction("You are X.")
    assert add_think_instruction(once) == once


# -- images ---------------------------------------------------------------------------------------
def test_monochrome1_dicom_is_inverted_like_reference_png():
    img = load_image(IMAGES / "pydicom-data-wg04" / "RG1_UNCR.dcm", max_side=512)
    ref = Image.open(IMAGES / "derived-png" / "RG1_UNCR.png").convert("L").resize(img.size)
    a = np.asarray(img.convert("L"), dtype=float).ravel()
    b = np.asarray(ref, dtype=float).ravel()
    assert img.mode == "RGB" and max(img.size) == 512
    assert np.corrcoef(a, b)[0, 1] > 0.9  # inverted would be strongly negative


def test_small_dicoms_and_windowing():
    ct = load_image(IMAGES / "pydicom-testfiles" / "CT_small.dcm")
    mr = load_image(IMAGES / "pydicom-testfiles" / "MR_small.dcm")
    assert ct.size == (128, 128) and mr.size == (64, 64)
    for img in (ct, mr):
        arr = np.asarray(img)
        assert arr.min() == 0 and arr.max() == 255  # full dynamic range after the window


def test_png_bytes_base64_and_attachment_agree():
    png = IMAGES / "nih-cxr14" / "00000001_000.png"
    data = png.read_bytes()
    b64 = base64.b64encode(data).decode()
    ref = np.asarray(load_image(png))
    for src in (data, f"data:image/png;base64,{b64}", {"contentType": "image/png", "data": b64}):
        assert np.array_equal(np.asarray(load_image(src)), ref)
    dcm = (IMAGES / "pydicom-testfiles" / "CT_small.dcm").read_bytes()
    assert load_image({"contentType": "application/dicom", "data": base64.b64encode(dcm).decode()}).size == (128, 128)
    assert image_to_data_url(load_image(png, max_side=32)).startswith("data:image/png;base64,")


def test_image_errors_are_one_line():
    for bad in (IMAGES / "nope.png", IMAGES / "pydicom-testfiles" / "test-SR.dcm", b"not an image",
                {"contentType": "image/png", "url": "https://example.org/x.png"}):
        with pytest.raises(InputError) as ei:
            load_image(bad)
        assert "\n" not in str(ei.value)


# -- settings -------------------------------------------------------------------------------------
def test_env_overrides_file_and_flags_override_env(tmp_path):
    cfg = tmp_path / "chartwise.toml"
    cfg.write_text('[backend]\nbackend = "openai"\nmodel = "from-file"\nbase_url = "http://file:8000/v1/"\n'
                   'concurrency = 8\n')
    env = {"CHARTWISE_MODEL": "from-env", "CHARTWISE_THINKING": "1", "CHARTWISE_RETRIES": "5"}
    c = resolve_config({"model": None}, config_file=cfg, environ=env)
    assert (c.backend, c.model, c.base_url, c.concurrency, c.thinking, c.retries) == (
        "openai", "from-env", "http://file:8000/v1", 8, True, 5)
    c2 = resolve_config({"model": "from-flag", "backend": "vertex"}, config_file=cfg, environ=env)
    assert (c2.model, c2.backend) == ("from-flag", "vertex")


def test_defaults_and_api_key(monkeypatch):
    c = resolve_config(environ={})
    assert (c.backend, c.model, c.max_context, c.max_output) == ("transformers", "google/medgemma-27b-it", 131072, 8192)
    monkeypatch.delenv("CHARTWISE_API_KEY", raising=False)
    monkeypatch.setenv("MY_KEY", "k1")
    assert BackendConfig(api_key_env="MY_KEY").resolved_api_key() == "k1"
    assert "k1" not in repr(BackendConfig(api_key="k1"))


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(ConfigError) as ei:
        resolve_config(environ={"CHARTWISE_BACKEND": "ollama"})
    assert "backend" in str(ei.value) and "CHARTWISE_BACKEND" in str(ei.value) and "\n" not in str(ei.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("backend = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_config(config_file=bad, environ={})
    typo = tmp_path / "typo.toml"
    typo.write_text('modle = "x"\n')
    with pytest.raises(ConfigError, match="modle"):
        resolve_config(config_file=typo, environ={})


# -- budget ---------------------------------------------------------------------------------------
def test_token_budget():
    b = TokenBudget()
    assert b.max_prompt == 131072 - 8192 - 256
    assert b.fits(100_000) and not b.fits(130_000)
    used = b.consume(20_000)
    assert used.remaining == b.max_prompt - 20_000 and b.remaining == b.max_prompt
    assert b.output_tokens_for(130_000) == 131072 - 130_000 - 256
    plan = used.plan(300_000, summary_tokens=2_000)
    assert not plan.fits and plan.steps == -(-300_000 // (used.remaining - 2_000))
    assert used.plan(1_000).fits and used.plan(1_000).steps == 1
    assert b.needs_summarization(200_000)
    assert estimate_tokens("abcdefghi") == 3 and estimate_tokens("") == 0
