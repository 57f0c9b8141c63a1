"""The HTTP API through the real FastAPI app (httpx ASGI transport): sources, patients, timeline,
citations, evidence, tools, the agent (JSON and server-sent events), auth, the viewer's assets."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _interfaces_fakes import UNSUPPORTED, ScriptedBackend  # noqa: E402

from chartwise.cliutil import sample_path  # noqa: E402
from chartwise.fhir.store import load  # noqa: E402
from chartwise.http_api import create_app, webui_dir  # noqa: E402
from chartwise.service import Workspace  # noqa: E402

pytestmark = pytest.mark.anyio

PID = "d4f1aab1-73e6-4d51-98eb-e1556406b2a3"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def sample_records():
    return load(sample_path())


@pytest.fixture
def ws(sample_records):
    w = Workspace(backend=ScriptedBackend(), settings={"repair_rounds": 0})
    w.add_records(sample_records, path=str(sample_path()))
    return w


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


def parse_sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        event = re.search(r"^event: (.+)$", block, re.M).group(1)
        data = json.loads(re.search(r"^data: (.+)$", block, re.M).group(1))
        out.append((event, data))
    return out


async def test_health_sources_patients_timeline(ws):
    async with client(create_app(ws, token="")) as c:
        h = (await c.get("/api/health")).json()
        assert h["status"] == "ok" and h["backend"].startswith("scripted") and h["sources"] == 1
        assert "not a medical device" in h["notice"]
        sources = (await c.get("/api/sources")).json()
        assert sources[0]["patients"] == 1 and sources[0]["default"] and sources[0]["quarantined"] == 0
        pats = (await c.get("/api/patients")).json()
        assert [p["id"] for p in pats] == [PID] and pats[0]["gender"] == "male"
        t = (await c.get(f"/api/patients/{PID}/timeline")).json()
        assert t["patient"]["id"] == PID and t["vitals"] and t["labs"]
        assert all(p["key"].startswith("Observation/") for s in t["vitals"] for p in s["points"])
        r = await c.get(f"/api/patients/{PID}/timeline.html")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "<svg" in r.text
        m = (await c.get(f"/api/sources/{sources[0]['id']}/manifest")).json()
        assert m["read"] == 407 and m["resource_counts"]["Observation"] == 297
        assert (await c.get("/api/patients/nope/timeline")).status_code == 404
        assert (await c.get("/api/patients", params={"source": "nope"})).status_code == 404


async def test_load_source_is_server_side_and_checked(ws, tmp_path):
    app = create_app(ws, token="")
    async with client(app) as c:
        r = await c.post("/api/sources", json={"path": "/work/shared/data/fhir/uscore"})
        if Path("/work/shared/data/fhir/uscore").is_dir():
            assert r.status_code == 200, r.text
            sid = r.json()["id"]
            assert r.json()["patients"] == 2 and r.json()["default"]
            assert len((await c.get("/api/patients", params={"source": sid})).json()) == 2
        r = await c.post("/api/sources", json={"path": "http://169.254.169.254/fhir"})
        assert r.status_code == 403 and "URL" in r.json()["detail"]
        r = await c.post("/api/sources", json={"path": str(tmp_path / "missing.json")})
        assert r.status_code == 404 and "\n" not in r.json()["detail"]
        assert (await c.post("/api/sources", json={"path": "relative/file.json"})).status_code == 400
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        r = await c.post("/api/sources", json={"path": str(bad)})
        assert r.status_code == 400 and "bad.json" in r.json()["detail"]
    limited = Workspace(allowed_roots=[str(tmp_path)])
    async with client(create_app(limited, token="")) as c:
        r = await c.post("/api/sources", json={"path": str(sample_path())})
        assert r.status_code == 403 and "allowed roots" in r.json()["detail"]
        assert (await c.get("/api/patients")).status_code == 404  # nothing loaded yet


async def test_cite_resource_span_paper(ws):
    async with client(create_app(ws, token="")) as c:
        t = (await c.get(f"/api/patients/{PID}/timeline")).json()
        key = t["vitals"][0]["latest"]["key"]
        v = (await c.get("/api/cite", params={"key": key})).json()
        assert v["kind"] == "resource" and v["resource"]["resourceType"] == "Observation"
        assert f"{v['resource']['resourceType']}/{v['resource']['id']}" == key
        assert (await c.get("/api/cite", params={"key": "Observation/not-there"})).status_code == 404
        assert (await c.get("/api/cite", params={"key": "hello"})).status_code == 400
        corpus = Path("/work/shared/data/literature/pubmedqa-dev.json")
        if corpus.exists():
            pmid = next(iter(json.loads(corpus.read_text())))
            p = (await c.get("/api/cite", params={"key": f"PMID:{pmid}"})).json()
            assert p["kind"] == "paper" and p["paper"]["pmid"] == pmid and p["paper"]["text"]


async def test_cite_note_span():
    notes = Path("/work/shared/data/fhir/uscore")
    if not notes.is_dir():
        pytest.skip("shared US Core data not present")
    w = Workspace()
    src = w.load(str(notes))
    doc = next(k for k in src.records.refs.by_key if k.startswith("DocumentReference/"))
    owner = src.records.patient_of[doc]
    text = src.records.patient(owner).facts_by_key[doc].text
    assert text
    async with client(create_app(w, token="")) as c:
        v = (await c.get("/api/cite", params={"key": f"{doc}#0-{min(20, len(text))}"})).json()
        assert v["kind"] == "span" and v["span"]["text"] == text[:20] and v["resource"]["resourceType"] == "DocumentReference"


async def test_evidence_and_tools(ws):
    async with client(create_app(ws, token="")) as c:
        e = (await c.post("/api/evidence", json={"question": "blood pressure", "budget": 500, "id": "q1"})).json()
        assert e["id"] == "q1" and e["question"] == "blood pressure" and e["items"]
        assert e["tokens"] == sum(i["tokens"] for i in e["items"]) and e["tokens"] <= 500
        assert all(re.match(r"^[A-Z][A-Za-z]+/", i["citation"]) for i in e["items"])
        tools = (await c.get("/api/tools")).json()
        names = {t["name"] for t in tools}
        assert "get_resource" in names and all(t["parameters"]["type"] == "object" for t in tools)
        key = e["items"][0]["citation"]
        r = (await c.post("/api/tools/get_resource", json={"arguments": {"key": key}})).json()
        assert r["tool"] == "get_resource" and r["items"][0]["key"] == key
        r = await c.post("/api/tools/get_resource", json={"arguments": {}})
        assert r.status_code == 400 and "key" in r.json()["detail"]
        assert (await c.post("/api/tools/nope", json={})).status_code == 404


async def test_ask_json_and_stream(ws):
    async with client(create_app(ws, token="")) as c:
        r = (await c.post("/api/ask", json={"question": "What was the latest blood pressure?"})).json()
        assert r["citations"] and all(x["verified"] for x in r["citations"])
        assert f"[{r['citations'][0]['key']}]" in r["answer"] and UNSUPPORTED not in r["answer"]
        assert r["unsupported"][0]["statement"] == UNSUPPORTED and r["model"] == "scripted-test"
        resp = await c.post("/api/ask/stream", json={"question": "What was the latest blood pressure?", "patient": PID})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(resp.text)
        kinds = [e for e, _ in events]
        assert kinds[-1] == "result" and kinds.count("progress") >= 5 and "error" not in kinds
        types = [d.get("type") for e, d in events if e == "progress"]
        assert types.index("route") < types.index("answer") < types.index("verify")
        assert any(d.get("line", "").startswith("verify:") for _, d in events)
        assert events[-1][1]["citations"] and events[-1][1]["unsupported"]
        # a wrong patient is an HTTP error before the stream starts
        bad = await c.post("/api/ask/stream", json={"question": "x", "patient": "nope"})
        assert bad.status_code == 404
        s = (await c.post("/api/summarize", json={})).json()
        assert s["task"] == "summary" and s["citations"]
        empty = await c.post("/api/ask", json={"question": ""})
        assert empty.status_code == 422


async def test_literature_without_patient(ws):
    if not Path("/work/shared/data/literature/pubmedqa-dev.json").exists():
        pytest.skip("shared literature corpus not present")
    async with client(create_app(ws, token="")) as c:
        resp = await c.post("/api/literature/stream", json={"question": "Does aspirin prevent stroke?"})
        events = parse_sse(resp.text)
        assert events[-1][0] == "result"
        assert all(c["key"].startswith("PMID:") for c in events[-1][1]["citations"])


async def test_token_auth(ws):
    async with client(create_app(ws, token="s3cret")) as c:
        assert (await c.get("/api/health")).status_code == 200
        r = await c.get("/api/patients")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert (await c.get("/api/patients", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await c.get("/api/patients", headers={"Authorization": "Bearer s3cret"})).status_code == 200
        assert (await c.post("/api/ask/stream", json={"question": "x"})).status_code == 401


async def test_trusted_hosts_guard_against_dns_rebinding(ws):
    app = create_app(ws, token="", allowed_hosts=["127.0.0.1", "localhost"])
    async with client(app) as c:
        assert (await c.get("/api/health")).status_code == 200
        assert (await c.get("/api/health", headers={"Host": "evil.example"})).status_code == 400


async def test_openapi_and_viewer_assets(ws):
    async with client(create_app(ws, token="")) as c:
        spec = (await c.get("/openapi.json")).json()
        for path in ("/api/health", "/api/sources", "/api/patients", "/api/patients/{patient_id}/timeline",
                     "/api/evidence", "/api/ask", "/api/ask/stream", "/api/summarize/stream", "/api/literature/stream",
                     "/api/cite"):
            assert path in spec["paths"], path
        assert "AgentResult" in spec["components"]["schemas"] and "Timeline" in spec["components"]["schemas"]
        page = await c.get("/")
        assert page.status_code == 200 and "Not a medical device" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name in ("app.js", "app.css"):
            assert (await c.get(f"/static/{name}")).status_code == 200
    # no external assets: every src/href in the viewer is local
    for f in webui_dir().iterdir():
        text = f.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), f.name
        assert "cdn" not in text.lower(), f.name
