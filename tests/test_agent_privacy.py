"""Privacy in the agent (issue 6): no PHI in the logs of full ask / summarize runs, one audit entry per
request, and de-identification at the model boundary for a remote (OpenAI-compatible) backend with
the displayed answer re-identified."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from _scripted_backend import ScriptedBackend, data_blocks_in, echo_first
from chartwise.agent import ask, summarize
from chartwise.agent.api import _context
from chartwise.agent.context import AgentSettings
from chartwise.agent.safety import safety_notice
from chartwise.audit import AuditLog
from chartwise.cliutil import sample_path
from chartwise.fhir.deid import DeidSettings, phi_values
from chartwise.fhir.store import load
from chartwise.privacy import capture_logs, scan_for_phi
from _agent_fixtures import _index_in_tmp  # noqa: F401  (autouse fixtures)
from _loopback import LoopbackServer, QuietHandler

NOTE_ID = "priv-note"



@pytest.fixture(scope="module")
def with_note(tmp_path_factory):
    """The sample patient plus a discharge note that names the patient, birth date and address."""
    bundle = json.loads(Path(sample_path()).read_text())
    p = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    name = " ".join([*p["name"][0]["given"], p["name"][0]["family"]])
    addr = f"{p['address'][0]['line'][0]}, {p['address'][0]['city']}"
    text = (f"Discharge note for {name}, born {p['birthDate']}, living at {addr}. "
            "Discharge follow-up with cardiology in 2 weeks.")
    import base64
    note = {"resourceType": "DocumentReference", "id": NOTE_ID, "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]},
            "subject": {"reference": f"Patient/{p['id']}"}, "date": "2021-06-02T10:00:00Z",
            "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}}]}
    bundle["entry"].append({"fullUrl": f"urn:uuid:{NOTE_ID}", "resource": note})
    path = tmp_path_factory.mktemp("privacy") / "patient.json"
    path.write_text(json.dumps(bundle))
    return load(path), p


def _ctx(records, backend, **settings):
    return _context(None, backend=backend, settings=AgentSettings(**settings), records=records)


def test_no_phi_in_debug_logs_of_ask_and_summarize_and_audit(with_note, tmp_path):
    records, patient = with_note
    audit = AuditLog(tmp_path / "audit.jsonl")
    values = phi_values(patient)
    with capture_logs() as lines:
        r1 = ask("What did the discharge note say about follow-up?",
                 context=_ctx(records, ScriptedBackend(lambda p: '{"final": "enough"}' if "Decide what else" in p
                                                       else echo_first(3)(p))), audit=audit)
        r2 = summarize(context=_ctx(records, ScriptedBackend(echo_first(2)), window_tokens=3000), audit=audit)
    assert r1["citations"] and r2["citations"]
    assert lines, "nothing was logged: the scan would prove nothing"
    assert scan_for_phi("\n".join(lines), values) == []
    # the safety notice on every result
    assert r1["notice"] == r2["notice"] == safety_notice()
    # one audit entry per request: task, patient, keys read and cited; no record content
    entries = audit.entries()
    assert [e.task for e in entries] == ["question", "summary"]
    rec = records.patient(None)
    for e, r in zip(entries, (r1, r2)):
        assert e.patient == rec.patient_key and e.status == "ok" and e.backend == "scripted"
        assert set(e.keys_read) == {i["key"] for i in r["evidence"]}
        assert e.keys_cited == [c["key"] for c in r["citations"]] and set(e.keys_cited) <= set(e.keys_read)
        assert e.remote is False and e.deidentified is False
    assert scan_for_phi(Path(audit.path).read_text(), values) == []


class _ChatServer:
    """An OpenAI-compatible chat-completions server on loopback that records what it receives and
    answers like a model that quotes the note it was shown."""

    def __init__(self):
        self.bodies: list[str] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.bodies.append(raw.decode())
                body = json.loads(raw)
                prompt = "\n".join(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
                                   for m in body["messages"])
                self.send_json({"id": "c", "object": "chat.completion", "model": body.get("model"),
                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": outer.reply(prompt)},
                                                "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 20}})

        self._server = LoopbackServer(Handler)
        self.base_url = self._server.base_url

    @staticmethod
    def reply(prompt: str) -> str:
        if "Decide what else" in prompt:
            return '{"final": "enough"}'
        key = f"DocumentReference/{NOTE_ID}"
        for k, _, body in data_blocks_in(prompt):
            if k.split("#")[0] == key:      # the note, or a span of it (the retrieval tools cite spans)
                first = re.split(r"(?<=\.)\s", body.strip())[0]
                return f"{first.rstrip('.')} [{k}]."
        return "Not in the evidence."

    def close(self):
        self._server.close()


def test_remote_backend_sees_pseudonyms_and_answer_is_reidentified(with_note, tmp_path, monkeypatch):
    from chartwise.agent.models import BackendConfig
    from chartwise.agent.models.openai_backend import OpenAIBackend
    records, patient = with_note
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("CHARTWISE_DEID", raising=False)
    server = _ChatServer()
    try:
        backend = OpenAIBackend(BackendConfig(backend="openai", model="medgemma", base_url=server.base_url,
                                              retries=0, timeout_s=10))
        audit = AuditLog(tmp_path / "audit.jsonl")
        ctx = _ctx(records, backend, repair_rounds=0)
        assert ctx.remote and ctx.deidentifying()          # on by default for a remote backend
        result = ask("What did the discharge note say about follow-up?", context=ctx, audit=audit)
    finally:
        server.close()
    sent = "\n".join(server.bodies)
    assert server.bodies and f"DocumentReference/{NOTE_ID}" in sent      # the note went out, keys intact
    assert scan_for_phi(sent, phi_values(patient)) == []                 # but no name, birth date, address
    family = patient["name"][0]["family"]
    assert family in result["answer"] and patient["birthDate"] in result["answer"]   # re-identified for display
    assert result["citations"][0]["key"].split("#")[0] == f"DocumentReference/{NOTE_ID}"
    entry = audit.entries()[-1]
    assert entry.remote is True and entry.deidentified is True and entry.backend == "openai"


def test_local_backend_opt_in(with_note):
    records, _ = with_note
    backend = ScriptedBackend(["x"])
    assert not _ctx(records, backend).deidentifying()
    ctx = _ctx(records, backend)
    ctx.deid = DeidSettings(enabled=True)                                  # CHARTWISE_DEID=on
    assert ctx.deidentifying() and ctx.llm(records.patient(None).id) is not backend
