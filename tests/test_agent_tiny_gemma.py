"""The graph end to end with tiny random Gemma 3 models: whatever they write, no unverified
citation reaches the output."""
from __future__ import annotations

import pytest

from _tiny_gemma import build_tiny_multimodal, build_tiny_text
from chartwise.agent import events
from chartwise.agent.api import _context
from chartwise.agent.context import AgentSettings
from chartwise.agent.models import BackendConfig, load_backend
from chartwise.agent.verifier import citations_in
from chartwise.cliutil import sample_path
from chartwise.fhir.store import load

PNG = "/work/shared/data/images/nih-cxr14/00000001_000.png"
SETTINGS = dict(plan_tokens=16, answer_tokens=24, summary_tokens=16, max_rounds=1, evidence_tokens=800,
                context_tokens=1800)


@pytest.fixture(scope="module")
def records():
    return load(sample_path())


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny_agent")
    text = load_backend(BackendConfig(backend="transformers", model=str(build_tiny_text(base / "t")), device="cpu"))
    mm = load_backend(BackendConfig(backend="transformers", model=str(build_tiny_multimodal(base / "m")), device="cpu"))
    return {"text": text, "mm": mm}


def _check(result):
    keys = {i["key"] for i in result["evidence"]}
    for key in citations_in(result["answer"]):
        assert key in keys or key.split("#")[0] in keys
    assert all(c["verified"] and c["key"] in keys for c in result["citations"])
    assert result["llm_calls"] >= 2 and result["prompt_tokens"] > 0


@pytest.mark.parametrize("kind", ["text", "mm"])
def test_tiny_gemma_question(records, backends, kind):
    ctx = _context(None, backend=backends[kind], settings=AgentSettings(**SETTINGS), records=records)
    evs = list(events("What was the last blood pressure?", context=ctx))
    _check(evs[-1]["result"])


def test_tiny_gemma_with_image(records, backends):
    ctx = _context(None, backend=backends["mm"], settings=AgentSettings(**SETTINGS), records=records)
    evs = list(events("What does this chest film show?", context=ctx, images=[PNG]))
    result = evs[-1]["result"]
    _check(result)
    assert "Images were not used" not in result["answer"]
    ctx = _context(None, backend=backends["text"], settings=AgentSettings(**SETTINGS), records=records)
    result = list(events("What does this chest film show?", context=ctx, images=[PNG]))[-1]["result"]
    assert "Images were not used" in result["answer"]
