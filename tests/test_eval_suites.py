"""A small slice of every suite: with ``--backend none`` through the CLI, and with the tiny Gemma 3
backend through the agent. Gold data comes from the shipped files generated from the raw JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chartwise import eval_chartqa, eval_medagentbench
from chartwise.cli import main
from chartwise.eval_report import data_file, run_eval, spread, to_markdown

DATA = Path("/work/shared/data")
SAMPLE = str(Path(__file__).resolve().parents[1] / "src/chartwise/data/literature_sample.jsonl")
pytestmark = pytest.mark.skipif(not (DATA / "fhir/synthea-r4/bundles").is_dir(), reason="shared data not present")


def test_shipped_sets_cover_every_task_type_and_category():
    tasks = eval_medagentbench.load_tasks(data_file("medagentbench_synthea.json"))
    kinds = {eval_medagentbench.task_type(t["id"]) for t in tasks}
    assert {"task1", "task2", "task4", "task6", "task7", "task9", "task10", "task3", "task8"} <= kinds
    assert all({"id", "instruction", "context", "eval_MRN", "sol"} <= set(t) for t in tasks)
    items = eval_chartqa.load_items(data_file("chartqa.json"))
    cats = {i["category"] for i in items}
    assert {"lab", "vital", "condition", "medication", "immunization", "procedure", "encounter", "allergy",
            "imaging", "note", "abstain"} <= cats
    assert all(i["gold_keys"] for i in items if i["category"] != "abstain")
    # a slice spreads over kinds
    assert len({i["category"] for i in spread(items, 11, "category")}) == 11


def test_cli_eval_backend_none(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["eval", "--limit", "4", "--out", str(out), "--corpus", SAMPLE]) == 0
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert report["backend"] == "none" and set(report["suites"]) == {"medagentbench", "chartqa", "literature"}
    mab = report["suites"]["medagentbench"]["metrics"]
    assert mab["graded"] >= 3 and mab["accuracy"] == 1.0 and mab["sol_agreement"] == 1.0
    qa = report["suites"]["chartqa"]["metrics"]
    assert qa["items"] == 4 and qa["gold_verified"] == 1.0 and qa["evidence_recall"] is not None
    lit = report["suites"]["literature"]["metrics"]
    assert lit["items"] == 4 and 0.0 <= lit["recall_at_5"] <= 1.0
    assert "decision_accuracy" not in lit  # needs a model
    for name in ("medagentbench", "chartqa", "literature", "machine:"):
        assert name in md
    assert "wrote" in capsys.readouterr().err


def test_medagentbench_facts_solver_on_full_shipped_set():
    report = run_eval(suites=["medagentbench"])
    m = report["suites"]["medagentbench"]["metrics"]
    assert m["accuracy"] == 1.0 and m["graded"] == m["tasks"] - 2
    assert "task3" in to_markdown(report)


@pytest.fixture(scope="module")
def tiny_backend(tmp_path_factory):
    pytest.importorskip("transformers")
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny_gemma import build_tiny_text

    from chartwise.agent.models import BackendConfig, load_backend

    path = build_tiny_text(tmp_path_factory.mktemp("tiny_eval") / "t")
    return load_backend(BackendConfig(backend="transformers", model=str(path), device="cpu"))


def test_every_suite_with_tiny_gemma(tiny_backend, tmp_path):
    """Random weights: the numbers mean nothing, but every model metric is computed and graded."""
    report = run_eval(suites=["medagentbench", "chartqa", "literature"], backend=tiny_backend,
                      backend_name="transformers", model="tiny-gemma3", limit=1, corpus=SAMPLE,
                      # A random model writes until its token cap: small caps keep this a plumbing test.
                      agent_settings={"plan_tokens": 24, "answer_tokens": 32, "summary_tokens": 32,
                                      "max_rounds": 0, "repair_rounds": 0})
    mab = report["suites"]["medagentbench"]
    assert mab["metrics"]["graded"] == 1 and all(isinstance(r["correct"], bool) for r in mab["items"])
    qa = report["suites"]["chartqa"]["metrics"]
    for k in ("answer_accuracy", "abstention_accuracy", "evidence_recall"):
        assert k in qa
    rows = report["suites"]["chartqa"]["items"]
    assert all(isinstance(r["correct"], bool) and "answer" in r for r in rows)
    lit = report["suites"]["literature"]
    assert "decision_accuracy" in lit["metrics"] and all("decision" in r for r in lit["items"])
    md = to_markdown(report)
    assert "tiny-gemma3" in md and "answer_accuracy" in md
