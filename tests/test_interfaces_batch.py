"""``chartwise batch``: resumes after being killed mid-run; invalid patient data is reported and
the other patients finish; one output per patient plus report.json."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _interfaces_fakes import ChatServer  # noqa: E402


def _patient(pid: str, birth: str = "1970-05-01") -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": birth}


def _obs(pid: str, i: int, value: float) -> dict:
    return {"resourceType": "Observation", "id": f"{pid}-bp{i}", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}],
                     "text": "Systolic blood pressure"},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": f"202{i}-03-0{i + 1}",
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}


def make_export(folder: Path, n: int, *, invalid: str | None = None) -> list[str]:
    """A small Bulk FHIR NDJSON export: n patients with three blood pressures each."""
    folder.mkdir(parents=True, exist_ok=True)
    pids = [f"pt{i:02d}" for i in range(n)]
    pats = [_patient(p) for p in pids]
    obs = [_obs(p, i, 120 + 7 * k + i) for k, p in enumerate(pids) for i in range(3)]
    if invalid:
        pats.append(_patient(invalid, birth="the day before yesterday"))  # invalid R4: quarantined
        obs.append(_obs(invalid, 0, 150))
        bad = _obs(pids[0], 9, 130)
        bad["effectiveDateTime"] = "March 2021"                           # one invalid resource of a valid patient
        obs.append(bad)
    (folder / "Patient.000.ndjson").write_text("\n".join(json.dumps(p) for p in pats) + "\n")
    (folder / "Observation.000.ndjson").write_text("\n".join(json.dumps(o) for o in obs) + "\n")
    return pids


def batch_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "chartwise.cli", "batch", str(src), "--out", str(out), "--no-progress", *extra]


ENV = {**os.environ, "CHARTWISE_BACKEND": "none", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_invalid_patient_is_reported_and_the_rest_finish(tmp_path):
    pids = make_export(tmp_path / "export", 5, invalid="broken")
    out = tmp_path / "out"
    proc = subprocess.run(batch_cmd(tmp_path / "export", out, "--task", "timeline", "--format", "md"),
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 1, proc.stderr  # failures make the exit code non-zero, after everything ran
    assert "5 done" in proc.stderr and "1 failed" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["ok"] == 5 and report["failed"] == 1 and report["patients"] == 6
    rows = {r["patient"]: r for r in report["results"]}
    assert rows["broken"]["status"] == "failed" and "birthDate" in rows["broken"]["error"]
    assert report["quarantined"] == 2 and any("Observation/pt00-bp9" in q for q in report["quarantine"])
    for p in pids:
        assert rows[p]["status"] == "ok"
        text = (out / rows[p]["output"]).read_text()
        assert f"Timeline of patient {p}" in text and "Systolic blood pressure" in text
    assert sorted(f.name for f in out.iterdir()) == sorted([f"{p}.timeline.md" for p in pids] + ["report.json"])


def test_batch_resumes_after_kill(tmp_path):
    pids = make_export(tmp_path / "export", 8)
    out = tmp_path / "out"
    slow = ChatServer(delay=0.4)
    try:
        args = batch_cmd(tmp_path / "export", out, "--task", "summarize",
                         "--backend", "openai", "--base-url", slow.base_url, "--model", "medgemma-test", "--concurrency", "2")
        env = {**ENV, "OPENAI_API_KEY": "sk-test", "CHARTWISE_RETRIES": "0"}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline and len(list(out.glob("*.summarize.json"))) < 2:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # killed mid-run, no chance to clean up
        proc.wait(timeout=10)
        done_before = sorted(f.name for f in out.glob("*.summarize.json"))
        assert 2 <= len(done_before) < len(pids), "the run finished before it could be killed"
        for f in done_before:  # what exists is complete (atomic writes)
            doc = json.loads((out / f).read_text())
            assert doc["task"] == "summarize" and doc["citations"] and doc["answer"]
        partial = json.loads((out / "report.json").read_text())
        assert partial["complete"] is False
    finally:
        slow.close()
    fast = ChatServer(delay=0.0)
    try:
        args[args.index("--base-url") + 1] = fast.base_url
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        fast.close()
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["failed"] == 0 and report["patients"] == len(pids)
    assert report["skipped"] == len(done_before) and report["ok"] == len(pids) - len(done_before)
    skipped = sorted(r["output"] for r in report["results"] if r["status"] == "skipped")
    assert skipped == done_before
    assert sorted(f.name for f in out.glob("*.summarize.json")) == sorted(f"{p}.summarize.json" for p in pids)
    assert not list(out.glob(".*.tmp"))
    for p in pids:
        doc = json.loads((out / f"{p}.summarize.json").read_text())
        assert doc["patient"] == p and all(c["key"].startswith(f"Observation/{p}-") for c in doc["citations"])


def test_batch_ask_needs_a_question(tmp_path):
    make_export(tmp_path / "export", 1)
    proc = subprocess.run(batch_cmd(tmp_path / "export", tmp_path / "out", "--task", "ask"),
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == "chartwise: --task ask needs --question"
