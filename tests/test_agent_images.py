"""Image tools in the agent: a full graph run (scripted backend) plans ``classify_images`` on an image the
sample patient's record carries (a Media with an inline chest film), with the tiny random SigLIP; the
answer cites the image key and the verifier accepts it like any other evidence."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from _scripted_backend import ScriptedBackend, data_blocks_in
from chartwise.agent import events
from chartwise.agent.api import _context
from chartwise.agent.context import AgentSettings
from chartwise.cliutil import sample_path
from chartwise.fhir.store import load

PNG = Path("/work/shared/data/images/nih-cxr14/00000001_000.png")
KEY = "Media/cxr-1"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    if not PNG.exists():
        pytest.skip(f"{PNG} not found")
    bundle = json.loads(Path(sample_path()).read_text())
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    media = {"resourceType": "Media", "id": "cxr-1", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
             "createdDateTime": "2021-05-04T09:00:00Z",
             "modality": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"}]},
             "content": {"contentType": "image/png", "title": "chest film",
                         "data": base64.b64encode(PNG.read_bytes()).decode()}}
    bundle["entry"].append({"fullUrl": "urn:uuid:cxr-1", "resource": media})
    base = tmp_path_factory.mktemp("img")
    (base / "patient.json").write_text(json.dumps(bundle))
    return load(base / "patient.json")


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    from _tiny_siglip import build_tiny_siglip
    from chartwise.tools import IndexSettings, configure
    mp = pytest.MonkeyPatch()
    mp.setenv("CHARTWISE_SIGLIP_MODEL", str(build_tiny_siglip(tmp_path_factory.mktemp("siglip") / "m")))
    mp.setenv("CHARTWISE_AUDIT_LOG", str(tmp_path_factory.mktemp("audit") / "audit.jsonl"))
    configure(IndexSettings(path=tmp_path_factory.mktemp("index")))
    yield
    configure(None)
    mp.undo()


def test_planner_classifies_an_image_and_cites_it(records):
    def reply(prompt: str) -> str:
        if "Decide what else" in prompt:
            assert "classify_images" in prompt                   # offered for an imaging question
            return json.dumps({"tool": "classify_images", "arguments": {"image": KEY, "labels": ["pleural effusion"]}})
        for k, _, body in data_blocks_in(prompt):
            if k == KEY:
                return f"{' '.join(body.split())} [{KEY}]."
        return "No image evidence [Observation/none]."
    backend = ScriptedBackend(reply)
    ctx = _context(None, backend=backend, settings=AgentSettings(max_rounds=0, repair_rounds=0), records=records)
    evs = list(events("Does the chest film show a pleural effusion?", context=ctx))
    result = evs[-1]["result"]
    tools = [e for e in evs if e["type"] == "tool"]
    assert [t["tool"] for t in tools] == ["classify_images"] and tools[0]["items"] == 1 and not tools[0]["error"]
    cited = {c["key"]: c for c in result["citations"]}
    assert KEY in cited and cited[KEY]["verified"]
    assert f"[{KEY}]" in result["answer"] and re.search(r"effusion", result["answer"], re.I)


def test_image_tools_not_offered_for_other_questions(records):
    seen = []
    def reply(prompt: str) -> str:
        if "Decide what else" in prompt:
            seen.append("classify_images" in prompt)
            return '{"final": "enough"}'
        return "ok"
    ctx = _context(None, backend=ScriptedBackend(reply), settings=AgentSettings(max_rounds=0, repair_rounds=0),
                   records=records)
    list(events("What was the last LDL cholesterol?", context=ctx))
    assert seen == [False]
