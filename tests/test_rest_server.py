"""The REST source against a real FHIR server (sekmet-fhir on 127.0.0.1, started here).

Results through the server must equal results from the same bundles read from files: the manifest
counts, every clinical fact (keys, values, dates) and the timeline.
"""
from __future__ import annotations

import json

import pytest
from _fhir_server import SekmetServer, sekmet_executable, synthea_files

from chartwise.fhir.errors import SourceError
from chartwise.fhir.rest import FhirClient, RestSettings, RestSource, run_sync
from chartwise.fhir.store import load

pytestmark = pytest.mark.skipif(sekmet_executable() is None, reason="sekmet-fhir not installed (pip install sekmet-fhir==0.1.1)")

N_PATIENTS = 3
ADMIN_TOKEN = "chartwise-test-admin"


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())  # ES384, the other SMART algorithm
    folder = tmp_path_factory.mktemp("smart")
    private = folder / "client.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = folder / "client.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def files():
    return synthea_files(N_PATIENTS)


@pytest.fixture(scope="module")
def server(tmp_path_factory, rsa_key, files):
    auth = {"types": ["bearer", "smart"], "tokens": [ADMIN_TOKEN], "token_lifetime": 600,
            "smart_clients": [{"client_id": "chartwise", "public_key_path": str(rsa_key[1]), "scopes": "system/*.read"}]}
    srv = SekmetServer(tmp_path_factory.mktemp("sekmet"), auth=auth).start()
    try:
        srv.load_files(files, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        yield srv
    finally:
        srv.stop()


def _pid(file) -> str:
    bundle = json.loads(file.read_text())
    return next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")


def _same(records_a, records_b, pid):
    from chartwise.fhir.timeline import build_timeline

    a, b = records_a.patient(pid), records_b.patient(pid)
    assert [f.model_dump(mode="json") for f in a.facts] == [f.model_dump(mode="json") for f in b.facts]
    assert build_timeline(a).model_dump(mode="json") == build_timeline(b).model_dump(mode="json")
    assert records_a.patient_summaries()[f"Patient/{pid}"] == records_b.patient_summaries()[f"Patient/{pid}"]


def _bearer(server, **kw):
    return RestSettings(base_url=server.base_url, token=ADMIN_TOKEN, **kw)


@pytest.mark.parametrize("page_size", [50, 500])
def test_everything_equals_files(server, files, page_size):
    for file in files:
        pid = _pid(file)
        src = RestSource(_bearer(server, patients=[pid], page_size=page_size))
        remote, local = load(src), load(str(file))
        assert remote.manifest().resource_counts == local.manifest().resource_counts
        assert remote.manifest().quarantined == local.manifest().quarantined == 0
        _same(remote, local, pid)
        assert src.stats.requests == 2  # /metadata + one $everything page (sekmet does not page it)


@pytest.mark.parametrize("page_size", [50, 500])
def test_per_type_searches_equal_files(server, files, page_size):
    file = files[-1]
    pid = _pid(file)
    src = RestSource(_bearer(server, patients=[pid], page_size=page_size, use_everything=False))
    remote, local = load(src), load(str(file))
    assert remote.manifest().resource_counts == local.manifest().resource_counts
    _same(remote, local, pid)
    assert src.stats.requests > 3  # /metadata, the Patient, one search per type, referenced reads


def test_all_patients_on_the_server(server, files):
    remote = load(RestSource(_bearer(server, concurrency=2)))
    ids = {p.id for p in remote.manifest().patients}
    assert ids == {_pid(f) for f in files}
    for file in files:
        _same(remote, load(str(file)), _pid(file))


def test_smart_backend_services(server, files, rsa_key):
    pid = _pid(files[0])
    settings = RestSettings(base_url=server.base_url, patients=[pid], smart_client_id="chartwise",
                            smart_key_file=rsa_key[0], smart_scopes="system/*.read")
    src = RestSource(settings)
    _same(load(src), load(str(files[0])), pid)


def test_smart_unknown_client_is_one_line(server, files, rsa_key):
    settings = RestSettings(base_url=server.base_url, patients=[_pid(files[0])], smart_client_id="intruder",
                            smart_key_file=rsa_key[0])
    with pytest.raises(SourceError) as info:
        load(RestSource(settings))
    assert "refused (HTTP 401" in str(info.value) and "\n" not in str(info.value)


def test_no_token_is_one_line(server, files):
    with pytest.raises(SourceError, match="HTTP 401 unauthorized"):
        load(RestSource(RestSettings(base_url=server.base_url, patients=[_pid(files[0])], retries=0)))


def test_targeted_search_passes_parameters_through(server, files):
    file = files[0]
    pid = _pid(file)
    local = load(str(file)).patient(pid)
    labs = [f for f in local.facts if f.resource_type == "Observation" and f.codes and f.day]
    code = labs[0].codes[0]
    want = sorted(f.key for f in local.facts if f.resource_type == "Observation"
                  and any(c.code == code.code for c in f.codes))

    async def go():
        async with FhirClient(_bearer(server, page_size=2)) as client:
            hits = await client.search("Observation", {"patient": pid, "code": f"{code.system}|{code.code}"})
            dated = await client.search("Observation", {"patient": pid, "code": code.code,
                                                        "date": f"ge{labs[0].day}", "_count": 1})
            return hits, dated

    hits, dated = run_sync(go())
    assert sorted(f"Observation/{h['id']}" for h in hits) == want
    assert 1 <= len(dated) <= len(hits)
    assert all(h["effectiveDateTime"][:10] >= labs[0].day for h in dated)


def test_evidence_through_server_equals_files(server, files):
    from chartwise.tools import build_evidence

    file = files[0]
    pid = _pid(file)
    remote = load(RestSource(_bearer(server, patients=[pid]))).patient(pid)
    local = load(str(file)).patient(pid)
    for question in ("What was the last blood pressure?", "how many HbA1c tests in the last 2 years",
                     "current meds", "allergies"):
        a, b = build_evidence(question, remote), build_evidence(question, local)
        assert a.model_dump(mode="json") == b.model_dump(mode="json"), question
        if "blood pressure" in question:
            assert a.items, question
