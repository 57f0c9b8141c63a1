"""A FHIR R4 REST server as a :class:`~chartwise.fhir.sources.Source`.

``RestSource(settings)`` reads the server's CapabilityStatement (``/metadata``), then pulls each
patient's record: ``Patient/{id}/$everything`` when the server declares that operation, else a
read of the Patient plus one search by patient per resource type (and reads of the practitioners,
organizations, locations and medications those resources point at).  Pages are followed through
``Bundle.link[next]`` with a page cap and loop detection.  A record is complete or the read fails:
a page that cannot be fetched after retries, a next link seen before, a page cap reached with pages
left, or fewer entries than ``Bundle.total`` all raise a one-line
:class:`~chartwise.fhir.errors.SourceError` instead of returning a partial record.

I/O is async (``httpx.AsyncClient`` with connection pooling); retries with exponential backoff and
jitter (``tenacity``) on 429/5xx, timeouts, dropped connections and truncated bodies, honouring
``Retry-After``.  Auth: none, a bearer token, or SMART Backend Services (:mod:`.smart_auth`), with a
new token fetched once after a 401.  TLS verification is on unless switched off.

Logs carry resource types, ids (keys), counts and timings only; never resource content.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from pydantic import BaseModel, Field, SecretStr, field_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from .errors import ConfigError, SourceError
from .httputil import retry_after_seconds
from .smart_auth import Auth, BearerAuth, NoAuth, SmartBackendAuth
from .sources import Origin, RawResource

log = logging.getLogger(__name__)

#: Resource types pulled per patient when the server has no ``$everything`` (what the manifest,
#: facts and timeline read).
PATIENT_TYPES = (
    "Observation", "Condition", "MedicationRequest", "MedicationStatement", "MedicationAdministration",
    "Procedure", "Immunization", "AllergyIntolerance", "Encounter", "DiagnosticReport", "DocumentReference",
    "ImagingStudy", "CarePlan", "CareTeam", "Goal", "Device", "Claim", "ExplanationOfBenefit", "ServiceRequest",
    "FamilyMemberHistory", "Media", "Coverage",
)
#: Types read by id when the patient's resources point at them (per-type mode).
REFERENCED_TYPES = ("Medication", "Practitioner", "PractitionerRole", "Organization", "Location")
#: The search parameter that links each type to its patient, when it is not ``patient``.
_PATIENT_PARAM = {"Device": "patient", "Coverage": "beneficiary", "Media": "subject"}
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_ENV = "CHARTWISE_"


class RestSettings(BaseModel):
    """How to reach a FHIR server.  ``RestSettings.from_url(url)`` fills the rest from the environment."""

    base_url: str
    patients: list[str] = Field(default_factory=list, description="patient ids to pull; empty: every Patient on the server")
    token: SecretStr | None = Field(None, description="static bearer token")
    smart_client_id: str | None = None
    smart_key_file: Path | None = Field(None, description="PEM private key (RSA: RS384, EC P-384: ES384)")
    smart_token_url: str | None = Field(None, description="default: discovered from .well-known/smart-configuration")
    smart_scopes: str = "system/*.read"
    smart_kid: str | None = None
    smart_alg: str | None = None
    page_size: int = Field(200, ge=1, le=5000, description="_count on searches")
    page_cap: int = Field(500, ge=1, description="most pages followed per search before the read fails")
    timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0, description="first retry wait; doubles each retry (plus jitter)")
    max_backoff_s: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(120.0, ge=0, description="a longer Retry-After fails the read instead of waiting")
    verify_tls: bool = True
    ca_bundle: Path | None = None
    use_everything: bool | None = Field(None, description="None: use $everything when /metadata declares it")
    types: list[str] = Field(default_factory=lambda: list(PATIENT_TYPES))
    since: str | None = Field(None, description="_since for $everything / _lastUpdated=ge for searches")
    concurrency: int = Field(4, ge=1, le=64, description="simultaneous requests (connection pool size)")
    user_agent: str = "chartwise"

    @field_validator("base_url")
    @classmethod
    def _clean_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    @classmethod
    def from_url(cls, url: str, env: dict[str, str] | None = None, **overrides: Any) -> "RestSettings":
        """Settings for a CLI ``PATH`` URL.  ``.../Patient/ID`` selects one patient; options come from
        ``CHARTWISE_FHIR_*`` / ``CHARTWISE_SMART_*`` environment variables (see README.md, "Reliability and security")."""
        env = dict(os.environ if env is None else env)
        parts = urlsplit(url.strip())
        path = parts.path.rstrip("/")
        patients: list[str] = []
        segments = path.split("/")
        if len(segments) >= 2 and segments[-2] == "Patient" and segments[-1]:
            patients = [segments[-1]]
            path = "/".join(segments[:-2])
        base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        values: dict[str, Any] = {"base_url": base, "patients": patients}
        mapping = {
            "FHIR_TOKEN": "token", "FHIR_PAGE_SIZE": "page_size", "FHIR_PAGE_CAP": "page_cap",
            "FHIR_TIMEOUT": "timeout_s", "FHIR_RETRIES": "retries", "FHIR_VERIFY_TLS": "verify_tls",
            "FHIR_CA_BUNDLE": "ca_bundle", "FHIR_EVERYTHING": "use_everything", "FHIR_SINCE": "since",
            "FHIR_CONCURRENCY": "concurrency", "FHIR_PATIENTS": "patients", "FHIR_TYPES": "types",
            "SMART_CLIENT_ID": "smart_client_id", "SMART_KEY_FILE": "smart_key_file",
            "SMART_TOKEN_URL": "smart_token_url", "SMART_SCOPES": "smart_scopes", "SMART_KID": "smart_kid",
            "SMART_ALG": "smart_alg",
        }
        for suffix, name in mapping.items():
            raw = env.get(_ENV + suffix)
            if raw is None or raw == "":
                continue
            if name in ("patients", "types"):
                if name == "patients" and patients:
                    continue  # the URL names the patient
                values[name] = [p.strip() for p in raw.split(",") if p.strip()]
            elif name in ("verify_tls", "use_everything"):
                values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[name] = raw
        values.update(overrides)
        try:
            return cls(**values)
        except ValueError as err:
            first = err.errors()[0] if hasattr(err, "errors") else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
            raise ConfigError(f"FHIR server setting {where}: {first.get('msg', err)}") from err

    def auth(self) -> Auth:
        if self.smart_client_id:
            if not self.smart_key_file:
                raise ConfigError("SMART backend services need a private key: set CHARTWISE_SMART_KEY_FILE")
            return SmartBackendAuth(client_id=self.smart_client_id, key_file=self.smart_key_file,
                                    base_url=self.base_url, token_url=self.smart_token_url,
                                    scopes=self.smart_scopes, alg=self.smart_alg, kid=self.smart_kid)
        if self.token is not None:
            return BearerAuth(self.token.get_secret_value())
        return NoAuth()


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class PullStats:
    """Counts and timings of one read (what logs and benchmarks may show)."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    resources: int = 0
    token_refreshes: int = 0
    seconds: float = 0.0
    per_patient_requests: dict[str, int] = field(default_factory=dict)


class FhirClient:
    """Async FHIR REST client: capability check, paged searches, ``$everything``, reads.

    Use as ``async with FhirClient(settings) as client: ...``.  Every public method either returns
    complete results or raises :class:`SourceError`.
    """

    def __init__(self, settings: RestSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.auth = settings.auth()
        self.stats = PullStats()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._capability: dict | None = None
        self._sem: asyncio.Semaphore | None = None

    async def __aenter__(self) -> "FhirClient":
        s = self.settings
        verify: bool | str = str(s.ca_bundle) if (s.verify_tls and s.ca_bundle) else s.verify_tls
        limits = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)
        timeout = httpx.Timeout(s.timeout_s, connect=s.connect_timeout_s)
        self._client = httpx.AsyncClient(verify=verify, limits=limits, timeout=timeout, transport=self._transport,
                                         headers={"Accept": "application/fhir+json", "User-Agent": s.user_agent},
                                         follow_redirects=True)
        self._sem = asyncio.Semaphore(s.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ requests
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.settings.base_url}/{path.lstrip('/')}"

    async def get_json(self, path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> dict:
        """GET a FHIR JSON document with retries; 401 triggers one token refresh."""
        assert self._client is not None and self._sem is not None, "use 'async with FhirClient(...)'"
        url = self.url(path)
        s = self.settings
        refreshed = False
        attempts = 0

        async def once() -> dict:
            nonlocal refreshed, attempts
            attempts += 1
            if attempts > 1:
                self.stats.retries += 1
            headers = await self.auth.headers(self._client)
            self.stats.requests += 1
            try:
                async with self._sem:
                    resp = await self._client.get(url, params=params, headers=headers)
                    body = resp.content
            except httpx.TimeoutException as err:
                raise _Retryable(f"timed out after {s.timeout_s:g}s") from err
            except (httpx.TransportError, httpx.DecodingError) as err:
                if _is_tls_error(err):
                    raise SourceError(f"{_safe(url)}: TLS verification failed ({_short(err)}); fix the server "
                                      "certificate or set CHARTWISE_FHIR_CA_BUNDLE") from err
                if isinstance(err, httpx.ConnectError):
                    raise _Retryable(f"cannot connect ({_short(err)})") from err
                raise _Retryable(f"connection failed ({type(err).__name__}: {_short(err)})") from err
            status = resp.status_code
            if status == 401:
                if not refreshed and self.auth.invalidate():
                    refreshed = True
                    self.stats.token_refreshes += 1
                    log.info("401 from server; fetching a new token")
                    raise _Retryable("token expired", retry_after=0.0)
                raise SourceError(f"{_safe(url)}: HTTP 401 unauthorized; the token was rejected or has expired "
                                  "(set CHARTWISE_FHIR_TOKEN or the CHARTWISE_SMART_* settings)")
            if status == 403:
                raise SourceError(f"{_safe(url)}: HTTP 403 forbidden; the token's scopes do not allow this read "
                                  f"({_outcome_text(body)})")
            if status in RETRY_STATUS:
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                if retry_after is not None and retry_after > s.max_retry_after_s:
                    raise SourceError(f"{_safe(url)}: HTTP {status} with Retry-After {retry_after:.0f}s, longer than "
                                      f"the {s.max_retry_after_s:.0f}s allowed (CHARTWISE_FHIR_MAX_RETRY_AFTER)")
                raise _Retryable(f"HTTP {status}", retry_after)
            if status == 404:
                raise SourceError(f"{_safe(url)}: HTTP 404 not found ({_outcome_text(body)})")
            if status >= 400:
                raise SourceError(f"{_safe(url)}: HTTP {status} ({_outcome_text(body)})")
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as err:
                raise _Retryable(f"truncated or invalid JSON body ({len(body)} bytes)") from err
            if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
                raise SourceError(f"{_safe(url)}: the answer is not a FHIR resource")
            return data

        last: _Retryable | None = None
        try:
            async for attempt in AsyncRetrying(retry=retry_if_exception_type(_Retryable),
                                               stop=stop_after_attempt(s.retries + 2),
                                               wait=self._wait, reraise=True):
                with attempt:
                    return await once()
        except _Retryable as err:
            last = err
        raise SourceError(f"{_safe(url)}: {last} (gave up after {attempts} attempts)")

    def _wait(self, state: RetryCallState) -> float:
        s = self.settings
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, s.max_retry_after_s)
        base = s.backoff_s * (2 ** max(0, state.attempt_number - 1))
        return min(s.max_backoff_s, base) * (0.5 + random.random() / 2)

    # ------------------------------------------------------------------ capability
    async def capability(self) -> dict:
        if self._capability is None:
            cap = await self.get_json("metadata")
            if cap.get("resourceType") != "CapabilityStatement":
                raise SourceError(f"{self.settings.base_url}/metadata: not a CapabilityStatement; is this a FHIR base URL?")
            version = cap.get("fhirVersion")
            if isinstance(version, str) and not version.startswith("4.0"):
                raise SourceError(f"{self.settings.base_url}: server speaks FHIR {version}, not R4 (4.0.x)")
            self._capability = cap
        return self._capability

    async def supports_everything(self) -> bool:
        if self.settings.use_everything is not None:
            return self.settings.use_everything
        cap = await self.capability()
        for rest in cap.get("rest") or ():
            for res in rest.get("resource") or ():
                if res.get("type") == "Patient":
                    for op in res.get("operation") or ():
                        if op.get("name", "").lstrip("$") == "everything" or str(op.get("definition", "")).endswith("Patient-everything"):
                            return True
            for op in rest.get("operation") or ():
                if op.get("name", "").lstrip("$") == "everything":
                    return True
        return False

    async def supported_types(self) -> set[str] | None:
        cap = await self.capability()
        types = {res.get("type") for rest in cap.get("rest") or () for res in rest.get("resource") or ()}
        return {t for t in types if isinstance(t, str)} or None

    # ------------------------------------------------------------------ paging
    async def pages(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[tuple[str, dict]]:
        """Each page (URL, Bundle) of a search, following ``next`` links; complete or SourceError."""
        s = self.settings
        url = self.url(path)
        seen: set[str] = set()
        count = 0
        total: int | None = None
        page_no = 0
        current_params = params
        while True:
            key = _page_key(url, current_params)
            if key in seen:
                raise SourceError(f"{_safe(self.url(path))}: the server's next link loops back to a page already read "
                                  f"(page {page_no + 1}); the result would be incomplete")
            seen.add(key)
            if page_no >= s.page_cap:
                raise SourceError(f"{_safe(self.url(path))}: more than {s.page_cap} pages; stopped rather than "
                                  "return a partial record (raise CHARTWISE_FHIR_PAGE_CAP or the page size)")
            bundle = await self.get_json(url, current_params)
            page_no += 1
            self.stats.pages += 1
            if bundle.get("resourceType") == "OperationOutcome":
                raise SourceError(f"{_safe(url)}: {_outcome_text(orjson.dumps(bundle))}")
            if bundle.get("resourceType") != "Bundle":
                raise SourceError(f"{_safe(url)}: expected a Bundle, got {bundle.get('resourceType')}")
            if isinstance(bundle.get("total"), int):
                total = bundle["total"] if total is None else total
            count += sum(1 for e in bundle.get("entry") or () if _is_match(e))
            _raise_on_error_outcome(bundle, url)
            yield url, bundle
            nxt = next((l.get("url") for l in bundle.get("link") or () if l.get("relation") == "next" and l.get("url")), None)
            if not nxt:
                break
            url, current_params = self.url(nxt), None
        if total is not None and count != total:
            raise SourceError(f"{_safe(self.url(path))}: received {count} of the {total} resources Bundle.total "
                              "announced; refusing a partial record")

    async def search(self, resource_type: str, params: dict[str, Any] | None = None) -> list[dict]:
        """All matches of a search (``_count``, ``_since``, ``date``, ``code`` ... passed through)."""
        params = dict(params or {})
        params.setdefault("_count", self.settings.page_size)
        out = []
        async for _url, bundle in self.pages(resource_type, params):
            out.extend(e["resource"] for e in bundle.get("entry") or () if isinstance(e.get("resource"), dict)
                       and e["resource"].get("resourceType") != "OperationOutcome")
        return out

    async def read(self, resource_type: str, resource_id: str) -> dict:
        return await self.get_json(f"{resource_type}/{resource_id}")

    async def patient_ids(self) -> list[str]:
        """Every Patient id on the server (``_elements=id`` to keep pages small)."""
        found = await self.search("Patient", {"_elements": "id"})
        return [p["id"] for p in found if isinstance(p.get("id"), str)]

    # ------------------------------------------------------------------ one patient
    async def everything(self, patient_id: str) -> list[tuple[str, int, dict]]:
        params: dict[str, Any] = {}
        if self.settings.since:
            params["_since"] = self.settings.since
        out = []
        async for url, bundle in self.pages(f"Patient/{patient_id}/$everything", params or None):
            for index, entry in enumerate(bundle.get("entry") or ()):
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and res.get("resourceType") != "OperationOutcome":
                    out.append((url, index, res))
        return out

    async def by_type(self, patient_id: str) -> list[tuple[str, int, dict]]:
        """The patient, one search per type, then the resources they reference (complete or SourceError)."""
        supported = await self.supported_types()
        types = [t for t in self.settings.types if supported is None or t in supported]
        patient = await self.read("Patient", patient_id)
        results: list[tuple[str, int, dict]] = [(self.url(f"Patient/{patient_id}"), 0, patient)]

        async def one(rtype: str) -> list[tuple[str, int, dict]]:
            params: dict[str, Any] = {_PATIENT_PARAM.get(rtype, "patient"): patient_id, "_count": self.settings.page_size}
            if self.settings.since:
                params["_lastUpdated"] = f"ge{self.settings.since}"
            got = []
            async for url, bundle in self.pages(rtype, params):
                for index, entry in enumerate(bundle.get("entry") or ()):
                    res = entry.get("resource")
                    if _is_match(entry) and isinstance(res, dict):
                        got.append((url, index, res))
            return got

        for chunk in await asyncio.gather(*(one(t) for t in types)):
            results.extend(chunk)
        have = {f"{r['resourceType']}/{r.get('id')}" for _u, _i, r in results}
        wanted: dict[str, set[str]] = {}
        for _u, _i, res in results:
            for ref in _references(res):
                rtype, _, rid = ref.partition("/")
                if rtype in REFERENCED_TYPES and rid and "/" not in rid and ref not in have:
                    if supported is None or rtype in supported:
                        wanted.setdefault(rtype, set()).add(rid)
        for rtype, ids in wanted.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), 50):
                chunk_ids = ordered[start:start + 50]
                async for url, bundle in self.pages(rtype, {"_id": ",".join(chunk_ids), "_count": len(chunk_ids)}):
                    for index, entry in enumerate(bundle.get("entry") or ()):
                        if _is_match(entry) and isinstance(entry.get("resource"), dict):
                            results.append((url, index, entry["resource"]))
        return results

    async def pull_patient(self, patient_id: str) -> list[tuple[str, int, dict]]:
        """One patient's whole record as (page URL, entry index, resource)."""
        before = self.stats.requests
        started = time.monotonic()
        if await self.supports_everything():
            got = await self.everything(patient_id)
            if not any(r.get("resourceType") == "Patient" and r.get("id") == patient_id for _u, _i, r in got):
                raise SourceError(f"{self.settings.base_url}/Patient/{patient_id}/$everything: the answer lacks the Patient itself")
        else:
            got = await self.by_type(patient_id)
        self.stats.per_patient_requests[f"Patient/{patient_id}"] = self.stats.requests - before
        self.stats.resources += len(got)
        log.info("pulled Patient/%s resources=%d requests=%d took=%.3fs", patient_id, len(got),
                 self.stats.requests - before, time.monotonic() - started)
        return got


class RestSource:
    """A FHIR server as a :class:`~chartwise.fhir.sources.Source` (a sync iterator over an async pull).

    Iterating pulls every selected patient's complete record (``settings.patients``, or every
    Patient on the server) and yields the resources with their origin (page URL and entry index).
    """

    def __init__(self, settings: RestSettings | str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings if isinstance(settings, RestSettings) else RestSettings.from_url(settings)
        self.label = self.settings.base_url + (f"/Patient/{self.settings.patients[0]}" if len(self.settings.patients) == 1 else "")
        self.transport = transport
        self.stats = PullStats()

    def __iter__(self) -> Iterator[RawResource]:
        started = time.monotonic()
        pulled = run_sync(self._pull())
        self.stats.seconds = time.monotonic() - started
        seen: set[str] = set()
        for url, index, res in pulled:
            key = f"{res.get('resourceType')}/{res.get('id')}"
            if key in seen:  # shared resources (an Organization) come once per patient
                continue
            seen.add(key)
            yield RawResource(data=res, origin=Origin(_safe(url), entry=index), full_url=key,
                              bundle_type="searchset")

    async def _pull(self) -> list[tuple[str, int, dict]]:
        async with FhirClient(self.settings, transport=self.transport) as client:
            try:
                await client.capability()
                ids = list(self.settings.patients) or await client.patient_ids()
                out: list[tuple[str, int, dict]] = []
                for chunk in _chunks(ids, self.settings.concurrency):
                    for got in await asyncio.gather(*(client.pull_patient(pid) for pid in chunk)):
                        out.extend(got)
                return out
            finally:
                self.stats = client.stats
                if isinstance(client.auth, SmartBackendAuth):
                    self.stats.token_refreshes = max(self.stats.token_refreshes, client.auth.tokens_fetched - 1)


def open_rest_source(url: str, **overrides: Any) -> RestSource:
    """The REST source for a CLI ``PATH`` URL (``https://host/fhir`` or ``https://host/fhir/Patient/ID``)."""
    return RestSource(RestSettings.from_url(url, **overrides))


def run_sync(coro):
    """Run a coroutine to completion from sync code, also when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name="chartwise-rest", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---------------------------------------------------------------------------- helpers
def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def _is_match(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    mode = (entry.get("search") or {}).get("mode") if isinstance(entry.get("search"), dict) else None
    res = entry.get("resource")
    if isinstance(res, dict) and res.get("resourceType") == "OperationOutcome" and mode in (None, "outcome"):
        return False
    return mode in (None, "match")


def _raise_on_error_outcome(bundle: dict, url: str) -> None:
    for entry in bundle.get("entry") or ():
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == "OperationOutcome":
            if any(i.get("severity") in ("error", "fatal") for i in res.get("issue") or () if isinstance(i, dict)):
                raise SourceError(f"{_safe(url)}: the server reported an error in the search result "
                                  f"({_outcome_text(orjson.dumps(res))})")


def _references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from _references(v)
    elif isinstance(node, list):
        for v in node:
            yield from _references(v)


def _page_key(url: str, params: object) -> str:
    parts = urlsplit(url)
    pieces = [q for q in parts.query.split("&") if q]
    if params:
        items = params.items() if isinstance(params, dict) else params
        pieces += [f"{k}={v}" for k, v in items]
    return f"{parts.path}?{'&'.join(sorted(pieces))}"



def _outcome_text(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        return "no OperationOutcome"
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        for issue in data.get("issue") or ():
            if isinstance(issue, dict):
                text = issue.get("diagnostics") or ((issue.get("details") or {}).get("text") if isinstance(issue.get("details"), dict) else None)
                if text:
                    return " ".join(str(text).split())[:200]
                return f"{issue.get('severity', '')} {issue.get('code', '')}".strip()
    return "no OperationOutcome"


def _safe(url: str) -> str:
    """A URL without user info or query string (queries may hold search values)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:160] or type(err).__name__


def _is_tls_error(err: BaseException) -> bool:
    import ssl

    cur: BaseException | None = err
    while cur is not None:
        if isinstance(cur, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
