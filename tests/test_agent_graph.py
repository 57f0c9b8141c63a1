"""Full graph runs with a scripted backend: plan with tools, re-plan, step-wise summary, verifier."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from _scripted_backend import ScriptedBackend, block_items, echo_first
from chartwise.agent import build_graph, events
from chartwise.agent.api import _context
from chartwise.agent.context import AgentSettings
from chartwise.agent.verifier import citations_in
from chartwise.cliutil import sample_path
from chartwise.fhir.store import load
from _agent_fixtures import _audit_to_tmp, _index_in_tmp  # noqa: F401  (autouse fixtures)

SNAPSHOT = Path(__file__).parent / "snapshots" / "agent_graph.mmd"




@pytest.fixture(scope="module")
def records():
    return load(sample_path())


@pytest.fixture(scope="module")
def patient(records):
    return records.patient(None)


def ctx_for(records, backend, literature=False, **settings):
    return _context(None, backend=backend, settings=AgentSettings(**settings), records=records)


def run(ctx, question, **kw):
    evs = list(events(question, context=ctx, **kw))
    return evs, evs[-1]["result"]


def assert_all_verified(result):
    keys = {i["key"] for i in result["evidence"]}
    for key in citations_in(result["answer"]):
        assert key in keys or key.split("#")[0] in keys, key
    assert all(c["verified"] and c["key"] in keys for c in result["citations"])


def ldl(patient):
    return sorted((f for f in patient.facts if "Low Density Lipoprotein" in f.label), key=lambda f: f.day)[-1]


def test_plan_tools_replan_and_fabricated_citation(records, patient):
    fact = ldl(patient)
    value = fact.line.split("= ")[1].split(" ")[0]
    backend = ScriptedBackend([
        '{"tool": "latest", "arguments": {"concept": "LDL cholesterol"}}\n'
        '{"tool": "problem_list", "arguments": {}}',
        f'{{"tool": "get_resource", "arguments": {{"key": "{fact.key}"}}}}',
        f"The last LDL was {value} mg/dL on {fact.day} [{fact.key}]. Potassium was 4.4 mmol/L [Observation/fabricated].",
    ])
    ctx = ctx_for(records, backend, min_evidence=500, max_rounds=1, repair_rounds=0)
    evs, result = run(ctx, "What was the last LDL cholesterol?")
    tools = [e for e in evs if e["type"] == "tool"]
    assert [t["tool"] for t in tools][:2] == ["latest", "problem_list"] or {t["tool"] for t in tools[:2]} == {"latest", "problem_list"}
    assert tools[-1]["tool"] == "get_resource"                        # the re-plan round ran
    assert [e["round"] for e in evs if e["type"] == "plan"] == [1, 2]
    assert fact.key in result["answer"] and "fabricated" not in result["answer"] and "Potassium" not in result["answer"]
    assert any("Observation/fabricated" in u["citations"] for u in result["unsupported"])
    assert result["llm_calls"] == 3 and result["prompt_tokens"] == sum(backend.prompt_tokens)
    assert_all_verified(result)


def test_repair_round_fixes_unsupported(records, patient):
    fact = ldl(patient)
    value = fact.line.split("= ")[1].split(" ")[0]
    backend = ScriptedBackend(['{"final": "enough"}', f"LDL was 999 mg/dL [{fact.key}].",
                               f"LDL was {value} mg/dL on {fact.day} [{fact.key}]."])
    _, result = run(ctx_for(records, backend), "What was the last LDL cholesterol?")
    assert result["llm_calls"] == 3 and value in result["answer"]
    assert result["citations"][0]["key"] == fact.key


def test_only_fabricated_says_not_found(records):
    backend = ScriptedBackend(['{"final": "enough"}', "Her ferritin was 12 ng/mL [Observation/made-up].",
                               "Ferritin 12 ng/mL [Observation/made-up-again]."])
    _, result = run(ctx_for(records, backend, max_rounds=0), "What was her last ferritin?")
    assert result["answer"].startswith("Not found in the record") and result["citations"] == []
    assert len(result["unsupported"]) >= 1


def test_stepwise_summary_when_evidence_exceeds_budget(records):
    budget = 1800   # the planning turn alone (8 typed tool schemas) needs ~1,500
    def reply(p):
        if "Decide what else" in p:
            return ('{"tool": "search_facts", "arguments": {"type": "vital", "limit": 200}}\n'
                    '{"tool": "search_facts", "arguments": {"type": "lab", "limit": 200}}')
        return echo_first(2)(p)
    backend = ScriptedBackend(reply, max_context=budget + 600, max_output=512)
    ctx = ctx_for(records, backend, context_tokens=budget, evidence_tokens=6000, answer_tokens=200, summary_tokens=200)
    evs, result = run(ctx, "What blood pressure and cholesterol results are there?")
    maps = [e for e in evs if e["type"] == "summarize"]
    assert len(maps) >= 2                                            # map over windows, then answer
    assert max(backend.prompt_tokens) <= budget                      # every prompt within the budget
    assert result["citations"] and result["llm_calls"] == 1 + len(maps) + 1 + ("repair" in str(evs))
    assert_all_verified(result)


def test_chart_summary_period_by_period(records):
    backend = ScriptedBackend(lambda p: echo_first(2)(p))
    ctx = ctx_for(records, backend, window_tokens=1500)
    evs, result = run(ctx, "Summarize the chart.", task="summary")
    assert result["task"] == "summary"
    periods = [e for e in evs if e["type"] == "summarize"]
    assert len(periods) >= 3 and len(result["sections"]) >= 3
    assert "## By period" in result["answer"]
    assert_all_verified(result)
    assert not [e for e in evs if e["type"] == "plan"]               # deterministic: no model planning


def test_literature_yes_no_first_with_pmid_and_chart(records):
    def reply(prompt):
        if "Decide what else" in prompt:
            return '{"final": "enough"}'
        items = block_items(prompt)
        pmid = next(k for k, _ in items if k.startswith("PMID:"))
        chart = next(k for k, t in items if not k.startswith("PMID:"))
        assert "Begin with one word: Yes, No or Maybe" in prompt
        return f"Maybe. The question is studied in this paper [{pmid}]. The record holds a related fact [{chart}]."
    ctx = ctx_for(records, ScriptedBackend(reply), literature=True)
    _, result = run(ctx, "Does hypertension treatment reduce stroke risk?", task="literature")
    assert result["answer"].startswith("Maybe.")
    kinds = {c["key"].split(":")[0] if c["key"].startswith("PMID:") else "chart" for c in result["citations"]}
    assert kinds == {"PMID", "chart"}


def test_images_with_text_only_backend_are_not_used(records):
    png = "/work/shared/data/images/nih-cxr14/00000001_000.png"
    backend = ScriptedBackend(['{"final": "enough"}', "Cardiomegaly [file:00000001_000.png]."])
    _, result = run(ctx_for(records, backend, max_rounds=0, repair_rounds=0), "What does the chest film show?", images=[png])
    assert "Images were not used" in result["answer"] and "file:" not in result["answer"].split("Note:")[0]
    backend = ScriptedBackend(['{"final": "enough"}', "Cardiomegaly is seen [file:00000001_000.png]."], vision=True)
    _, result = run(ctx_for(records, backend, max_rounds=0, repair_rounds=0), "What does the chest film show?", images=[png])
    assert result["citations"][0]["key"] == "file:00000001_000.png" and backend.images[-1] == 1


def test_backend_none_is_the_evidence_pack(records):
    ctx = ctx_for(records, None)
    _, result = run(ctx, "blood pressure")
    assert result["model"] == "none" and result["llm_calls"] == 0 and result["citations"]
    assert_all_verified(result)


def test_multi_turn_resume_from_sqlite(records, tmp_path):
    db = str(tmp_path / "threads.sqlite")
    ctx = ctx_for(records, None)
    run(ctx, "blood pressure", thread="t1", checkpoints=db)
    _, second = run(ctx_for(records, None), "cholesterol", thread="t1", checkpoints=db)
    from chartwise.agent.graph import open_checkpointer
    with open_checkpointer(db) as saver:
        state = build_graph(saver).get_state({"configurable": {"thread_id": "t1"}}).values
    assert [h["question"] for h in state["history"]] == ["blood pressure", "cholesterol"]
    assert state["answer"] == second["answer"]
    # the follow-up sees the earlier turn
    backend = ScriptedBackend(['{"final": "enough"}', lambda p: "ok" if "Earlier in this conversation" in p else "no"])
    _, third = run(ctx_for(records, backend, max_rounds=0, repair_rounds=0), "and the trend?", thread="t1", checkpoints=db)
    assert "Earlier in this conversation" in backend.prompts[-1]


def test_graph_shape_snapshot():
    mermaid = build_graph().get_graph().draw_mermaid()
    if not SNAPSHOT.exists():
        SNAPSHOT.write_text(mermaid)
    assert mermaid == SNAPSHOT.read_text()


def test_state_is_plain_data(records):
    ctx = ctx_for(records, None)
    from langgraph.checkpoint.memory import InMemorySaver
    g = build_graph(InMemorySaver())
    cfg = {"configurable": {"thread_id": "x"}}
    list(g.stream({"request": {"question": "weight"}}, cfg, context=ctx))
    json.dumps(g.get_state(cfg).values)


def test_cli_ask_json_shape(capsys):
    from chartwise.cli import main
    assert main(["ask", str(sample_path()), "blood pressure", "--backend", "none", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    # DESIGN.md's keys, plus "notice" (the safety notice; additive)
    assert list(out) == ["answer", "citations", "unsupported", "model", "llm_calls", "prompt_tokens", "notice"]
    from chartwise.agent.safety import safety_notice
    assert out["notice"] == safety_notice()
    assert out["model"] == "none" and all(set(c) == {"key", "verified", "text"} for c in out["citations"])


def test_cli_citation_text_has_the_date_once(capsys):
    from chartwise.cli import main
    assert main(["ask", str(sample_path()), "What was the last creatinine?", "--backend", "none", "--quiet"]) == 0
    out = capsys.readouterr().out
    cites = out.split("Citations:")[1].split("\n\n")[0].strip().splitlines()
    assert cites
    for line in cites:
        text = line.split("] ", 1)[1]
        day = text[:10]
        assert text.count(day) == 1 or not day[:4].isdigit(), line
    assert out.rstrip().endswith("before any clinical use.")          # the safety notice closes the output
