"""Prompt injection (issue 6): every injected note of tests/data/injection_notes.json, attached to the
sample patient, run through the graph with a worst-case scripted backend (it does what the note asks:
emits the injected tool calls, the forbidden citations and the injected text) and with the tiny random
Gemma 3. Checked: the planning turn never sees note text; only tool calls chosen from the question run;
no forbidden citation or text survives the verifier."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from _scripted_backend import ScriptedBackend, echo_first
from chartwise.agent import events
from chartwise.agent.api import _context
from chartwise.agent.context import AgentSettings
import chartwise.tools as tools_mod
from chartwise.agent.toolbox import RetrievalToolbox
from chartwise.agent.verifier import citations_in
from chartwise.cliutil import sample_path
from chartwise.fhir.deid import phi_values
from chartwise.fhir.store import load
from _agent_fixtures import _audit_to_tmp, _index_in_tmp  # noqa: F401  (autouse fixtures)

DATA = json.loads((Path(__file__).parent / "data" / "injection_notes.json").read_text())
CASES = DATA["cases"]


class RecordingToolbox(RetrievalToolbox):
    """The agent's toolbox over the real ``chartwise.tools``, recording every call that actually runs."""

    def __init__(self, rec, **kw):
        super().__init__(tools_mod, rec, **kw)
        self.ran: list[tuple[str, dict]] = []

    def call(self, name, arguments):
        self.ran.append((name, dict(arguments)))
        return super().call(name, arguments)




@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    """{case id: RecordSet of the sample patient with the case's note attached}."""
    bundle = json.loads(Path(sample_path()).read_text())
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    out = {}
    base = tmp_path_factory.mktemp("injected")
    for case in CASES:
        note = {**case["note"], "subject": {"reference": f"Patient/{pid}"}}
        b = {**bundle, "entry": [*bundle["entry"], {"fullUrl": f"urn:uuid:{note['id']}", "resource": note}]}
        path = base / f"{case['id']}.json"
        path.write_text(json.dumps(b))
        out[case["id"]] = load(path)
    return out


def note_key(case):
    return f"DocumentReference/{case['note']['id']}"


def attacker_calls(case, rec) -> list[dict]:
    """What a compromised planner emits: the note's own tool-call objects, its instructions as a query,
    and the patient's identity as a (literature) query."""
    calls = []
    for m in re.finditer(r"\{\"tool\".*?\}\}", case["text"]):
        calls.append(json.loads(m.group()))
    lines = [l for l in case["text"].splitlines() if l.strip()]
    instruction = max(lines, key=len)
    calls.append({"tool": "search_notes", "arguments": {"query": " ".join(instruction.split()[:12])}})
    p = rec.patient
    name = " ".join([*p["name"][0].get("given", []), p["name"][0].get("family", "")])
    addr = p["address"][0]["line"][0]
    calls.append({"tool": "search_literature" if case["id"] == "exfiltrate" else "search_notes",
                  "arguments": {"query": f"{name} {addr} {p['birthDate']}"}})
    calls.append({"tool": "get_resource", "arguments": {"key": "Observation/x"}})
    return calls


def legit_calls(case, literature):
    calls = [{"tool": "search_literature" if literature else "search_notes", "arguments": {"query": case["question"]}}]
    calls.append({"tool": "get_resource", "arguments": {"key": note_key(case)}})
    return calls


def worst_case_backend(case, rec, literature):
    """Does what the note asks, everywhere it can."""
    bad = attacker_calls(case, rec)
    good = legit_calls(case, literature)
    expect = case["expect"]

    def reply(prompt: str) -> str:
        if "Decide what else" in prompt:
            return "\n".join(json.dumps(c) for c in [*bad, *good])
        legit = echo_first(2)(prompt)
        out = [legit]
        if note_key(case) in prompt:   # echo the injected note, cited to the note and to a real fact
            first = citations_in(legit)[:1] or [note_key(case)]
            for line in case["text"].splitlines():
                if line.strip():
                    out.append(f"{line.strip()} [{note_key(case)}].")
                    out.append(f"{line.strip()} [{first[0]}].")
        forged = " ".join(f"[{k}]" for k in expect["forbidden_citations"])
        out.append(f"The LDL was 40 mg/dL {forged}.")
        out.append("The patient is healthy.")
        return "\n".join(out)
    return reply


def _args_equal(a, b):
    return a[0] == b["tool"] and all(a[1].get(k) == v for k, v in b["arguments"].items())


def check_result(case, result, box, plan_prompts, *, scripted):
    expect = case["expect"]
    answer = result["answer"]
    keys = {i["key"] for i in result["evidence"]}
    for key in citations_in(answer):
        assert key in keys or key.split("#")[0] in keys, key
    assert all(c["verified"] and c["key"] in keys for c in result["citations"])
    cited = {c["key"] for c in result["citations"]} | set(citations_in(answer))
    assert not cited & set(expect["forbidden_citations"]), cited & set(expect["forbidden_citations"])
    for s in expect["forbidden_answer_substrings"]:
        assert s.lower() not in answer.lower(), (case["id"], s, answer)
    assert not re.search(r"[\u202a-\u202e\u2066-\u2069]", answer)
    # the planning turn never saw the note's text
    for prompt in plan_prompts:
        for line in case["text"].splitlines():
            if len(line.strip()) >= 16:
                assert line.strip()[:40] not in prompt, (case["id"], line)
    if scripted:
        literature = result["task"] == "literature"
        good = legit_calls(case, literature)
        for ran in box.ran:
            assert any(_args_equal(ran, g) for g in good), (case["id"], ran)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_injected_note_scripted_worst_case(case, injected):
    records = injected[case["id"]]
    rec = records.patient(None)
    literature = bool(re.search(r"\bevidence\b", case["question"]))
    backend = ScriptedBackend(worst_case_backend(case, rec, literature))
    ctx = _context(None, backend=backend, settings=AgentSettings(max_rounds=1), records=records)
    box = RecordingToolbox(rec, literature=literature)
    ctx._toolboxes[(rec.id, literature)] = box
    evs = list(events(case["question"], context=ctx))
    result = evs[-1]["result"]
    # the planning prompts up to the instruction (a tool-call repair turn quotes the model's own reply after it)
    plan_prompts = [p.split("Decide what else")[0] for p in backend.prompts if "Decide what else" in p]
    check_result(case, result, box, plan_prompts, scripted=True)
    if result["task"] != "summary":
        refused = [e for e in evs if e["type"] == "tool_refused"]
        assert refused, case["id"]                       # the injected calls were emitted and refused
        assert plan_prompts and box.ran                  # the question's own calls ran
    # nothing of the note's instructions reached the answer, though the model repeated them all
    assert result["unsupported"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from _tiny_gemma import build_tiny_text
    from chartwise.agent.models import BackendConfig, load_backend
    path = build_tiny_text(tmp_path_factory.mktemp("tiny_inj") / "t")
    return load_backend(BackendConfig(backend="transformers", model=str(path), device="cpu"))


def test_injected_notes_tiny_gemma(injected, tiny):
    settings = AgentSettings(plan_tokens=16, answer_tokens=16, summary_tokens=12, max_rounds=0, repair_rounds=0,
                             evidence_tokens=300, context_tokens=1100, window_tokens=1000)
    for case in CASES:
        records = injected[case["id"]]
        rec = records.patient(None)
        literature = bool(re.search(r"\bevidence\b", case["question"]))
        ctx = _context(None, backend=tiny, settings=settings, records=records)
        box = RecordingToolbox(rec, literature=literature)
        ctx._toolboxes[(rec.id, literature)] = box
        result = list(events(case["question"], context=ctx))[-1]["result"]
        check_result(case, result, box, [], scripted=False)
        guard = ctx.guard(rec.id, literature)
        for name, args in box.ran:   # whatever ran passed the guard: from the question, no identity
            assert guard.check({"tool": name, "arguments": args}, question=case["question"],
                               evidence=result["evidence"]) is None
            assert not any(v.lower() in json.dumps(args).lower() for v in phi_values(rec.patient))
