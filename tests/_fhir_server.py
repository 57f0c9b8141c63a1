"""A real FHIR server for tests and benchmarks: sekmet-fhir (FastAPI + SQLite) on 127.0.0.1.

``SekmetServer`` writes a settings file into a fresh folder, starts ``sekmet serve`` on a free
loopback port, waits for ``/metadata`` and stops the process on ``stop()``.  ``to_put_transaction``
rewrites a Synthea transaction bundle (POST entries, ``urn:uuid`` references) into ``PUT Type/id``
entries with ``Type/id`` references so the server keeps the ids the files use.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SYNTHEA = Path(os.environ.get("CHARTWISE_SHARED_DATA", "/work/shared/data")) / "fhir" / "synthea-r4" / "bundles"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sekmet_executable() -> str | None:
    here = Path(sys.executable).parent / "sekmet"
    if here.exists():
        return str(here)
    return shutil.which("sekmet")


def to_put_transaction(bundle: dict) -> dict:
    """A transaction with ``PUT Type/id`` entries and every ``urn:uuid`` reference rewritten to ``Type/id``."""
    mapping: dict[str, str] = {}
    for entry in bundle.get("entry") or ():
        res = entry.get("resource") or {}
        if entry.get("fullUrl") and res.get("id"):
            mapping[entry["fullUrl"]] = f"{res['resourceType']}/{res['id']}"

    def fix(node):
        if isinstance(node, dict):
            return {k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else fix(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    entries = []
    for entry in bundle.get("entry") or ():
        res = fix(copy.deepcopy(entry["resource"]))
        key = f"{res['resourceType']}/{res['id']}"
        entries.append({"fullUrl": key, "resource": res, "request": {"method": "PUT", "url": key}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


class SekmetServer:
    """One sekmet-fhir server process on a free loopback port with its own data folder."""

    def __init__(self, workdir: Path, *, auth: dict | None = None, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self.auth = auth
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "SekmetServer":
        exe = sekmet_executable()
        if exe is None:
            raise RuntimeError("sekmet-fhir is not installed (pip install sekmet-fhir==0.1.1)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = {
            "base_url": self.base_url, "host": "127.0.0.1", "port": self.port,
            "data_dir": str(self.workdir / "data"), "own_private_key_path": str(self.workdir / "keys" / "own.pem"),
            "simulator": {"enabled": False}, "log_inbound": False,
            "validation": {"inbound": "off"},
        }
        if self.auth:
            settings["server_auth"] = self.auth
        cfg = self.workdir / "settings.yaml"
        cfg.write_text(json.dumps(settings))  # JSON is YAML
        self.log = open(self.workdir / "server.log", "wb")
        self.proc = subprocess.Popen([exe, "serve", "-c", str(cfg)], cwd=self.workdir, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sekmet exited with {self.proc.returncode}; see {self.workdir / 'server.log'}")
            try:
                if httpx.get(f"{self.base_url}/metadata", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("sekmet did not answer /metadata in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def load_bundle(self, bundle: dict, headers: dict | None = None) -> None:
        resp = httpx.post(self.base_url, json=to_put_transaction(bundle), timeout=120,
                          headers={"Content-Type": "application/fhir+json", **(headers or {})})
        if resp.status_code >= 300:
            raise RuntimeError(f"loading a bundle failed: HTTP {resp.status_code} {resp.text[:300]}")

    def load_files(self, files: list[Path], headers: dict | None = None) -> None:
        for file in files:
            self.load_bundle(json.loads(Path(file).read_text()), headers)

    def __enter__(self) -> "SekmetServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def synthea_files(n: int) -> list[Path]:
    """The ``n`` smallest shared Synthea bundles (quick to load), in a stable order."""
    files = sorted(SYNTHEA.glob("*.json"), key=lambda p: (p.stat().st_size, p.name))
    return files[:n]
