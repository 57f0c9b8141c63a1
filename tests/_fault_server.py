"""A small FHIR server on 127.0.0.1 that misbehaves on request, for the REST source's fault tests.

It serves one set of resources (``Patient/{id}/$everything`` and per-type searches, paged with
``_count``/``_offset`` and ``Bundle.total``), an optional token endpoint, and applies queued faults
to the next requests whose path contains a given text:

* ``("429", seconds)``: 429 with ``Retry-After``;  ``("503", None)``: 503;
* ``("hang", seconds)``: answer after a delay (client timeouts);
* ``("truncate", None)``: a body cut short (Content-Length larger than what is sent, then close);
* ``("badjson", None)``: 200 with half a JSON document;
* ``("401", None)``: the token is treated as expired (401 with WWW-Authenticate).

Modes: ``loop_next`` (every next link points back at the first page), ``inflate_total`` (total
larger than what is served), ``drop_next`` (the last pages are never linked), ``everything`` (declare
``$everything`` in /metadata or not), ``require_token``.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FaultServer:
    def __init__(self, resources: list[dict], *, everything: bool = True, require_token: bool = False,
                 token_lifetime: int = 3600) -> None:
        self.resources = resources
        self.everything = everything
        self.require_token = require_token
        self.token_lifetime = token_lifetime
        self.faults: deque[tuple[str, str, float | None]] = deque()
        self.modes: set[str] = set()
        self.requests: list[str] = []
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FaultServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def inject(self, match: str, kind: str, arg: float | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append((match, kind, arg))

    # ------------------------------------------------------------------ dispatch
    def _take_fault(self, path: str) -> tuple[str, float | None] | None:
        with self._lock:
            for i, (match, kind, arg) in enumerate(self.faults):
                if match in path:
                    del self.faults[i]
                    return kind, arg
        return None

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        self.requests.append(f"{method} {path}")
        if method == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            h.rfile.read(length)
            if path == "/auth/token":
                self.token_requests += 1
                token = uuid.uuid4().hex
                self.tokens[token] = time.time() + self.token_lifetime
                return self._send(h, 200, {"access_token": token, "token_type": "bearer",
                                           "expires_in": self.token_lifetime})
            return self._send(h, 405, _outcome("method not allowed"))
        if path == "/fhir/.well-known/smart-configuration":
            return self._send(h, 200, {"token_endpoint": f"{self.root}/auth/token",
                                       "grant_types_supported": ["client_credentials"]})
        fault = self._take_fault(path)
        if self.require_token and path != "/fhir/metadata":
            auth = h.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip()
            expired = fault is not None and fault[0] == "401"
            if expired:
                self.tokens.pop(token, None)
            if token not in self.tokens or self.tokens[token] < time.time():
                return self._send(h, 401, _outcome("token expired"), {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if fault is not None:
            kind, arg = fault
            if kind == "429":
                return self._send(h, 429, _outcome("slow down"), {"Retry-After": str(int(arg or 0))})
            if kind in ("503", "500", "502"):
                return self._send(h, int(kind), _outcome("unavailable"))
            if kind == "hang":
                time.sleep(arg or 2.0)
            if kind == "truncate":
                body = json.dumps(self._answer(path, query)[1]).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/fhir+json")
                h.send_header("Content-Length", str(len(body)))
                h.send_header("Connection", "close")
                h.end_headers()
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                h.close_connection = True
                return
            if kind == "badjson":
                body = json.dumps(self._answer(path, query)[1]).encode()
                return self._send_raw(h, 200, body[: len(body) // 2])
        status, payload = self._answer(path, query)
        try:
            self._send(h, status, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, path: str, q: dict[str, str]) -> tuple[int, dict]:
        if path == "/fhir/metadata":
            patient = {"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}]}
            if self.everything:
                patient["operation"] = [{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]
            types = sorted({r["resourceType"] for r in self.resources} | {"Patient"})
            res = [patient] + [{"type": t} for t in types if t != "Patient"]
            return 200, {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                         "fhirVersion": "4.0.1", "format": ["json"], "rest": [{"mode": "server", "resource": res}]}
        segs = path.removeprefix("/fhir/").split("/")
        if len(segs) == 3 and segs[0] == "Patient" and segs[2] == "$everything":
            found = [r for r in self.resources if self._belongs(r, segs[1]) or self._referenced(r)]
            return 200, self._page(path, q, found)
        if len(segs) == 2:
            for r in self.resources:
                if r["resourceType"] == segs[0] and r.get("id") == segs[1]:
                    return 200, r
            return 404, _outcome("not found")
        if len(segs) == 1:
            rtype = segs[0]
            found = [r for r in self.resources if r["resourceType"] == rtype]
            if "_id" in q:
                ids = set(q["_id"].split(","))
                found = [r for r in found if r.get("id") in ids]
            for name in ("patient", "subject", "beneficiary"):
                if name in q:
                    found = [r for r in found if self._belongs(r, q[name].split("/")[-1])]
            return 200, self._page(path, q, found)
        return 404, _outcome("unknown path")

    def _belongs(self, r: dict, pid: str) -> bool:
        if r["resourceType"] == "Patient":
            return r.get("id") == pid
        for name in ("subject", "patient", "beneficiary"):
            ref = r.get(name)
            if isinstance(ref, dict) and ref.get("reference") in (f"Patient/{pid}",):
                return True
        return False

    def _referenced(self, r: dict) -> bool:
        return r["resourceType"] in ("Organization", "Practitioner", "Location", "Medication")

    def _page(self, path: str, q: dict[str, str], found: list[dict]) -> dict:
        count = int(q.get("_count", 20))
        offset = int(q.get("_offset", 0))
        page = found[offset: offset + count]
        total = len(found) + (5 if "inflate_total" in self.modes else 0)
        links = [{"relation": "self", "url": f"{self.base_url}{path.removeprefix('/fhir')}?_offset={offset}"}]
        if offset + count < len(found) and not ("drop_next" in self.modes and offset > 0):
            rest = "&".join(f"{k}={v}" for k, v in q.items() if k not in ("_offset",))
            nxt_offset = 0 if "loop_next" in self.modes else offset + count
            links.append({"relation": "next", "url": f"{self.base_url}{path.removeprefix('/fhir')}?{rest}&_offset={nxt_offset}"})
        return {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
                "entry": [{"fullUrl": f"{self.base_url}/{r['resourceType']}/{r['id']}", "resource": r,
                           "search": {"mode": "match"}} for r in page]}

    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_raw(h, status, json.dumps(payload).encode(), headers)

    def _send_raw(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)


def _outcome(text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}
