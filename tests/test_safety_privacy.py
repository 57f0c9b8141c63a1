"""Data blocks and the injection test set, the safety notice, the audit log, and no PHI in logs."""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from chartwise.agent.safety import (DATA_INSTRUCTION, DEFAULT_NOTICE, add_notice, block_keys, data_block, data_blocks,
                                    sanitize_data, safety_notice, with_notice)
from chartwise.audit import AuditLog
from chartwise.fhir.deid import phi_values
from chartwise.privacy import PhiRedactingFilter, capture_logs, scan_for_phi

INJECTIONS = json.loads((Path(__file__).parent / "data" / "injection_notes.json").read_text())["cases"]


# ---------------------------------------------------------------------------- data blocks
@pytest.mark.parametrize("case", INJECTIONS, ids=[c["id"] for c in INJECTIONS])
def test_injected_notes_stay_inside_their_block(case):
    key = f"DocumentReference/{case['note']['id']}"
    prompt = data_blocks([(key, case["text"])])
    assert prompt.startswith(DATA_INSTRUCTION)
    assert block_keys(prompt) == [key]  # a forged marker does not open a second block
    body = prompt.split(">>>\n", 1)[1].rsplit("\n<<<END DATA", 1)[0]
    assert "<<<" not in body and ">>>" not in body and "```" not in body
    assert "<end_of_turn>" not in body and "<start_of_turn>" not in body
    assert "{" not in body and "}" not in body
    assert "\u202e" not in body and "\u200b" not in body
    assert len(body) == len(case["text"])  # same length: note span offsets stay valid


def test_sanitized_text_is_not_a_tool_call():
    from pydantic import BaseModel

    from chartwise.agent.models.toolcalls import FinalAnswer, ToolCall, ToolSpec, parse_tool_reply

    class Query(BaseModel):
        query: str = ""
        patient: str = ""

    tools = [ToolSpec(name=n, description=n, args_model=Query)
             for n in ("search_notes", "fetch_records", "literature_search")]
    raw_hits = 0
    for case in INJECTIONS:
        raw = parse_tool_reply(case["text"], tools)
        raw_hits += isinstance(raw, ToolCall) or (isinstance(raw, FinalAnswer) and raw.explicit)
        reply = parse_tool_reply(sanitize_data(case["text"]), tools)
        assert not isinstance(reply, ToolCall), case["id"]
        assert not (isinstance(reply, FinalAnswer) and reply.explicit), case["id"]
    assert raw_hits >= 2  # unsanitized, the set does contain parseable calls


def test_data_block_shape():
    block = data_block("BP 120/80", key="Observation/1", kind="vital", title='Vitals "today"')
    head, body, tail = block.split("\n")
    assert head.startswith("<<<DATA tag=") and "key=Observation/1 kind=vital" in head and head.endswith(">>>")
    assert body == "BP 120/80" and tail.startswith("<<<END DATA tag=")
    assert head.split("tag=")[1][:10] == tail.split("tag=")[1][:10]


# ---------------------------------------------------------------------------- safety notice
def test_safety_notice_default_and_configurable(monkeypatch, tmp_path):
    monkeypatch.delenv("CHARTWISE_SAFETY_NOTICE", raising=False)
    monkeypatch.delenv("CHARTWISE_SAFETY_NOTICE_FILE", raising=False)
    assert safety_notice() == DEFAULT_NOTICE and "not a medical device" in DEFAULT_NOTICE
    assert with_notice("Answer.").endswith(f"*{DEFAULT_NOTICE}*\n")
    assert with_notice(with_notice("Answer.")) == with_notice("Answer.")
    assert "chartwise-notice" in with_notice("<html><body>x</body></html>", fmt="html")
    assert add_notice({"answer": "x"})["notice"] == DEFAULT_NOTICE
    monkeypatch.setenv("CHARTWISE_SAFETY_NOTICE", "  Nicht als Medizinprodukt zugelassen.  ")
    assert safety_notice() == "Nicht als Medizinprodukt zugelassen."
    monkeypatch.setenv("CHARTWISE_SAFETY_NOTICE", " ")
    path = tmp_path / "notice.txt"
    path.write_text("Site wording:\nreview required.")
    monkeypatch.setenv("CHARTWISE_SAFETY_NOTICE_FILE", str(path))
    assert safety_notice() == "Site wording: review required."
    assert safety_notice("Explicit.") == "Explicit."


# ---------------------------------------------------------------------------- audit log
@pytest.mark.parametrize("name", ["audit.jsonl", "audit.sqlite"])
def test_audit_log_entries(tmp_path, name):
    log = AuditLog(tmp_path / "sub" / name)
    with log.request("ask", patient="Patient/p1", user="dr-a", client="cli", question="What was her name?",
                     backend="openai", remote=True, deidentified=True) as req:
        req.read(["Observation/1", "Observation/2", "Observation/1"])
        req.cited(["Observation/2"])
    with pytest.raises(RuntimeError):
        with log.request("summarize", patient="Patient/p1") as req:
            req.read(["Condition/9"])
            raise RuntimeError("boom")
    log.record("timeline", patient="Patient/p2", keys_read=["Encounter/3"])
    entries = log.entries()
    assert [e.task for e in entries] == ["ask", "summarize", "timeline"]
    first = entries[0]
    assert first.keys_read == ["Observation/1", "Observation/2"] and first.keys_cited == ["Observation/2"]
    assert first.user == "dr-a" and first.client == "cli" and first.patient == "Patient/p1" and first.time
    assert first.question_sha256 and "What was her name" not in (tmp_path / "sub" / name).read_bytes().decode("utf-8", "replace")
    assert entries[1].status == "error" and entries[1].error == "RuntimeError"
    if name.endswith(".sqlite"):
        with sqlite3.connect(tmp_path / "sub" / name) as conn:
            assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 3


def test_audit_log_configuration(tmp_path):
    assert not AuditLog.default({"CHARTWISE_AUDIT_LOG": "off"}).enabled
    assert AuditLog.default({"CHARTWISE_AUDIT_LOG": str(tmp_path / "a.db")}).sqlite
    AuditLog(None).record("ask")  # disabled: a no-op


# ---------------------------------------------------------------------------- no PHI in logs
def _run_and_scan(argv, capsys):
    from chartwise.cli import main

    with capture_logs(logging.DEBUG) as lines:
        code = main(argv)
    captured = capsys.readouterr()
    return code, "\n".join(lines), captured


def test_no_phi_in_logs_of_a_full_file_run(capsys):
    from _fhir_server import synthea_files

    from chartwise.fhir.store import load

    file = synthea_files(1)[0]
    patient = load(str(file)).patient().patient
    values = phi_values(patient)
    assert len(values) >= 8
    for argv in (["inspect", str(file), "--debug"], ["timeline", str(file), "--format", "json", "--debug"]):
        code, logs, captured = _run_and_scan(argv, capsys)
        if code != 0 and "invalid choice" in captured.err:
            continue  # command not registered in this build
        assert code == 0, captured.err
        assert scan_for_phi(logs, values) == [], argv
        assert scan_for_phi(captured.err, values) == [], argv


def test_no_phi_in_logs_of_a_rest_run(capsys):
    from _fault_server import FaultServer
    from _fhir_server import synthea_files, to_put_transaction

    file = synthea_files(1)[0]
    resources = [e["resource"] for e in to_put_transaction(json.loads(file.read_text()))["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    values = phi_values(patient)
    with FaultServer(resources) as server:
        server.inject("$everything", "503")
        code, logs, captured = _run_and_scan(["inspect", f"{server.base_url}/Patient/{patient['id']}", "--debug"], capsys)
    assert code == 0, captured.err
    assert "pulled Patient/" in logs and "HTTP Request" in logs  # the logs did run at DEBUG
    assert scan_for_phi(logs, values) == []
    assert scan_for_phi(captured.err, values) == []


def test_redacting_filter():
    logger = logging.getLogger("chartwise.test.redact")
    flt = PhiRedactingFilter(["Anna Smith", "617-555-0199"])
    logger.addFilter(flt)
    try:
        with capture_logs() as lines:
            logger.warning("called %s at %s", "Anna  Smith", "(617) 555 0199")
    finally:
        logger.removeFilter(flt)
    assert lines == ["WARNING chartwise.test.redact: called [REDACTED] at ([REDACTED]"] or "Anna" not in lines[0]
    assert "Smith" not in lines[0] and "0199" not in lines[0]
