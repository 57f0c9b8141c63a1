"""The REST source against a loopback server that injects faults: it recovers, or fails with one line,
and never hands back a partial record as complete."""
from __future__ import annotations

import json
import socket
import time

import pytest
from _fault_server import FaultServer
from _fhir_server import synthea_files, to_put_transaction

from chartwise.fhir.errors import ChartwiseError, ConfigError, SourceError
from chartwise.fhir.rest import FhirClient, RestSettings, RestSource, run_sync
from chartwise.fhir.store import load


@pytest.fixture(scope="module")
def bundle_file():
    return synthea_files(1)[0]


@pytest.fixture(scope="module")
def resources(bundle_file):
    return [e["resource"] for e in to_put_transaction(json.loads(bundle_file.read_text()))["entry"]]


@pytest.fixture(scope="module")
def patient_id(resources):
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


@pytest.fixture(scope="module")
def file_facts(bundle_file, patient_id):
    return _facts(load(str(bundle_file)), patient_id)


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("keys")
    private = folder / "client.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = folder / "client.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _facts(records, pid):
    return [f.model_dump(mode="json", exclude={"line"}) for f in records.patient(pid).facts]


def _settings(server, pid, **kw):
    base = dict(base_url=server.base_url, patients=[pid], page_size=10, retries=3, backoff_s=0.01,
                max_backoff_s=0.05, timeout_s=2.0)
    base.update(kw)
    return RestSettings(**base)


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize("everything", [True, False], ids=["everything", "per-type"])
def test_clean_pull_equals_file(resources, patient_id, file_facts, everything):
    with FaultServer(resources, everything=everything) as server:
        src = RestSource(_settings(server, patient_id))
        records = load(src)
        assert _facts(records, patient_id) == file_facts
        assert records.manifest().quarantined == 0
        assert any("$everything" in r for r in server.requests) is everything
        assert src.stats.pages >= 2  # paged at _count=10


def test_429_retry_after_is_honoured(resources, patient_id, file_facts):
    with FaultServer(resources) as server:
        server.inject("$everything", "429", 1)
        src = RestSource(_settings(server, patient_id))
        started = time.monotonic()
        records = load(src)
        assert time.monotonic() - started >= 0.9
        assert src.stats.retries == 1
        assert _facts(records, patient_id) == file_facts


def test_503_then_recovers(resources, patient_id, file_facts):
    with FaultServer(resources, everything=False) as server:
        server.inject("/Observation", "503", times=2)
        server.inject("/Condition", "502")
        src = RestSource(_settings(server, patient_id))
        assert _facts(load(src), patient_id) == file_facts
        assert src.stats.retries == 3


def test_503_forever_fails_with_one_line(resources, patient_id):
    with FaultServer(resources) as server:
        server.inject("$everything", "503", times=10)
        with pytest.raises(SourceError) as info:
            load(RestSource(_settings(server, patient_id, retries=2)))
        text = _one_line(info.value)
        assert "HTTP 503" in text and "gave up after 4 attempts" in text


def test_retry_after_beyond_limit_fails(resources, patient_id):
    with FaultServer(resources) as server:
        server.inject("$everything", "429", 3600)
        with pytest.raises(SourceError, match="Retry-After 3600s"):
            load(RestSource(_settings(server, patient_id, max_retry_after_s=10)))


def test_timeout_then_recovers(resources, patient_id, file_facts):
    with FaultServer(resources) as server:
        server.inject("$everything", "hang", 1.5)
        src = RestSource(_settings(server, patient_id, timeout_s=0.3))
        assert _facts(load(src), patient_id) == file_facts
        assert src.stats.retries >= 1


def test_timeout_forever_fails(resources, patient_id):
    with FaultServer(resources) as server:
        server.inject("$everything", "hang", 1.0, times=5)
        with pytest.raises(SourceError, match="timed out after 0.2s"):
            load(RestSource(_settings(server, patient_id, timeout_s=0.2, retries=1)))


@pytest.mark.parametrize("kind", ["truncate", "badjson"])
def test_truncated_body_then_recovers(resources, patient_id, file_facts, kind):
    with FaultServer(resources) as server:
        server.inject("$everything", kind)
        src = RestSource(_settings(server, patient_id))
        assert _facts(load(src), patient_id) == file_facts
        assert src.stats.retries == 1


@pytest.mark.parametrize("kind", ["truncate", "badjson"])
def test_truncated_body_forever_fails(resources, patient_id, kind):
    with FaultServer(resources) as server:
        server.inject("$everything", kind, times=10)
        with pytest.raises(SourceError) as info:
            load(RestSource(_settings(server, patient_id, retries=1)))
        _one_line(info.value)


@pytest.mark.parametrize("everything", [True, False], ids=["everything", "per-type"])
def test_looping_next_link_is_an_error(resources, patient_id, everything):
    with FaultServer(resources, everything=everything) as server:
        server.modes.add("loop_next")
        with pytest.raises(SourceError, match="loops back"):
            load(RestSource(_settings(server, patient_id)))


@pytest.mark.parametrize("mode", ["inflate_total", "drop_next"])
def test_short_result_against_total_is_an_error(resources, patient_id, mode):
    with FaultServer(resources) as server:
        server.modes.add(mode)
        with pytest.raises(SourceError, match="Bundle.total"):
            load(RestSource(_settings(server, patient_id)))


def test_page_cap_is_an_error_not_truncation(resources, patient_id):
    with FaultServer(resources) as server:
        with pytest.raises(SourceError, match="more than 2 pages"):
            load(RestSource(_settings(server, patient_id, page_cap=2)))


def test_static_token_rejected_fails_with_one_line(resources, patient_id):
    with FaultServer(resources, require_token=True) as server:
        with pytest.raises(SourceError) as info:
            load(RestSource(_settings(server, patient_id, token="not-a-valid-token")))
        text = _one_line(info.value)
        assert "401" in text and "not-a-valid-token" not in text


def test_smart_token_expired_is_refreshed(resources, patient_id, file_facts, rsa_key):
    with FaultServer(resources, require_token=True) as server:
        server.inject("$everything", "401")
        src = RestSource(_settings(server, patient_id, smart_client_id="chartwise-test", smart_key_file=rsa_key[0]))
        assert _facts(load(src), patient_id) == file_facts
        assert server.token_requests == 2  # the first token, and a new one after the 401
        assert src.stats.token_refreshes == 1


def test_smart_token_refreshed_before_expiry(resources, patient_id, rsa_key):
    with FaultServer(resources, require_token=True, token_lifetime=2) as server:
        settings = _settings(server, patient_id, smart_client_id="c", smart_key_file=rsa_key[0])

        async def two_reads():
            async with FhirClient(settings) as client:
                await client.read("Patient", patient_id)
                time.sleep(1.7)  # inside the refresh margin (a fifth of the lifetime) before expiry
                await client.read("Patient", patient_id)
                return client.auth.tokens_fetched

        assert run_sync(two_reads()) == 2
        assert not any(r.endswith("401") for r in server.requests)


def test_unreachable_server_fails_with_one_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = RestSettings(base_url=f"http://127.0.0.1:{port}/fhir", retries=1, backoff_s=0.01)
    with pytest.raises(SourceError) as info:
        load(RestSource(settings))
    assert "cannot connect" in _one_line(info.value)


def test_settings_from_url_and_env(tmp_path):
    s = RestSettings.from_url("https://fhir.example.org/r4/Patient/abc", env={
        "CHARTWISE_FHIR_PAGE_SIZE": "50", "CHARTWISE_FHIR_VERIFY_TLS": "false", "CHARTWISE_FHIR_PATIENTS": "x,y",
        "CHARTWISE_SMART_CLIENT_ID": "cid", "CHARTWISE_SMART_SCOPES": "system/Patient.rs"})
    assert s.base_url == "https://fhir.example.org/r4" and s.patients == ["abc"]
    assert s.page_size == 50 and s.verify_tls is False and s.smart_scopes == "system/Patient.rs"
    assert RestSettings.from_url("https://h/fhir/", env={"CHARTWISE_FHIR_PATIENTS": "x,y"}).patients == ["x", "y"]
    assert RestSettings.from_url("https://h/fhir", env={}).verify_tls is True
    with pytest.raises(ConfigError, match="page_size"):
        RestSettings.from_url("https://h/fhir", env={"CHARTWISE_FHIR_PAGE_SIZE": "0"})
    with pytest.raises(ConfigError, match="CHARTWISE_SMART_KEY_FILE"):
        RestSettings.from_url("https://h/fhir", env={"CHARTWISE_SMART_CLIENT_ID": "c"}).auth()
    with pytest.raises(ConfigError, match="not found"):
        RestSettings.from_url("https://h/fhir", env={"CHARTWISE_SMART_CLIENT_ID": "c",
                                                     "CHARTWISE_SMART_KEY_FILE": str(tmp_path / "none.pem")}).auth()
    assert "secret-token" not in repr(RestSettings(base_url="https://h", token="secret-token"))


def test_tls_verification_on_by_default_fails_cleanly():
    """A plain-HTTP listener spoken to over https: the TLS handshake fails with one line, no traceback."""
    with FaultServer([]) as server:
        settings = RestSettings(base_url=f"https://127.0.0.1:{server.port}/fhir", retries=0, backoff_s=0.01)
        with pytest.raises(ChartwiseError) as info:
            load(RestSource(settings))
        _one_line(info.value)


def test_cli_reads_a_server(resources, patient_id, capsys):
    from chartwise.cli import main

    with FaultServer(resources) as server:
        assert main(["inspect", f"{server.base_url}/Patient/{patient_id}", "--json"]) == 0
        manifest = json.loads(capsys.readouterr().out)
        assert manifest["patients"][0]["id"] == patient_id and manifest["quarantined"] == 0
        server.modes.add("loop_next")
        assert main(["inspect", f"{server.base_url}/Patient/{patient_id}"]) != 0
        err = capsys.readouterr().err
        assert err.startswith("chartwise: ") and err.count("\n") == 1 and "loops back" in err
