"""Vertex AI preset: a Model Garden MedGemma endpoint spoken to as an OpenAI-compatible server.

URL: ``https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/endpoints/{endpoint}/chat/completions``
(or ``https://{dedicated_domain}/v1/...`` for an endpoint with a dedicated DNS name). The bearer token
comes from Google application-default credentials (``gcloud auth application-default login`` or a
service account), through the optional ``google-auth`` package: ``pip install 'chartwise[vertex]'``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from chartwise.fhir.errors import ConfigError

from .config import BackendConfig
from .openai_backend import OpenAIBackend

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def vertex_chat_url(project: str, region: str, endpoint: str, dedicated_domain: str | None = None) -> str:
    host = dedicated_domain or f"{region}-aiplatform.googleapis.com"
    return (f"https://{host}/v1/projects/{project}/locations/{region}/endpoints/{endpoint}/chat/completions")


class GoogleTokenProvider:
    """Application-default credentials, refreshed shortly before they expire."""

    def __init__(self) -> None:
        try:
            import google.auth
            import google.auth.transport.requests
        except ImportError:
            raise ConfigError("the vertex backend needs google-auth: pip install 'chartwise[vertex]'") from None
        try:
            self._creds, _ = google.auth.default(scopes=[SCOPE])
        except google.auth.exceptions.DefaultCredentialsError:
            raise ConfigError("no Google application-default credentials: run `gcloud auth application-default "
                              "login` or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key") from None
        self._request = google.auth.transport.requests.Request()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            expiry = getattr(self._creds, "expiry", None)
            stale = not self._creds.valid or (expiry is not None and expiry.timestamp() - time.time() < 300)
            if stale:
                self._creds.refresh(self._request)
            return str(self._creds.token)


class VertexBackend(OpenAIBackend):
    name = "vertex"

    def __init__(self, config: BackendConfig, *, token_provider: Callable[[], str] | None = None,
                 transport: httpx.BaseTransport | None = None, url: str | None = None) -> None:
        missing = [f"--{n.replace('_', '-')} (env CHARTWISE_{n.upper()})" for n, v in (
            ("vertex_project", config.vertex_project), ("vertex_region", config.vertex_region),
            ("vertex_endpoint", config.vertex_endpoint)) if not v]
        if missing and url is None:
            raise ConfigError(f"the vertex backend needs {', '.join(missing)}")
        url = url or vertex_chat_url(config.vertex_project or "", config.vertex_region or "",
                                     config.vertex_endpoint or "", config.vertex_dedicated_domain)
        super().__init__(config, url=url, token_provider=token_provider or GoogleTokenProvider(), transport=transport)
