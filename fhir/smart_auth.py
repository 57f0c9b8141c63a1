"""Authentication for FHIR REST servers: a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the client
signs a short-lived JWT (``iss`` = ``sub`` = client id, ``aud`` = token URL, ``exp`` at most five
minutes ahead, a unique ``jti``) with its private key (RS384 or ES384) and posts it to the token
endpoint with ``grant_type=client_credentials``; the answer is an access token with ``expires_in``.
The token is cached and fetched again shortly before it expires, or at once after a 401.

The token URL is taken from the settings, else discovered from
``{base}/.well-known/smart-configuration`` (``token_endpoint``).  Secrets never reach logs.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Protocol

import httpx

from .errors import ConfigError, SourceError

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Fetch a new token when the cached one has fewer seconds than this left.
REFRESH_MARGIN_S = 60.0


class Auth(Protocol):
    """What the REST client needs from an auth scheme."""

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]: ...

    def invalidate(self) -> bool:
        """Forget the current token after a 401; True when a new one can be fetched (refreshable)."""
        ...


class NoAuth:
    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        return {}

    def invalidate(self) -> bool:
        return False


class BearerAuth:
    """A fixed bearer token (from settings or ``CHARTWISE_FHIR_TOKEN``); it cannot be refreshed."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


class SmartBackendAuth:
    """SMART Backend Services: client-credentials grant with a signed JWT assertion."""

    def __init__(self, *, client_id: str, key_file: str | Path, base_url: str, token_url: str | None = None,
                 scopes: str = "system/*.read", alg: str | None = None, kid: str | None = None,
                 jku: str | None = None, assertion_lifetime_s: int = 300) -> None:
        self.client_id = client_id
        self.key_file = Path(key_file)
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self.scopes = scopes
        self.kid = kid
        self.jku = jku
        self.assertion_lifetime_s = min(int(assertion_lifetime_s), 300)
        self._key, self.alg = _load_key(self.key_file, alg)
        self._token: str | None = None
        self._expires_at = 0.0
        self._margin = REFRESH_MARGIN_S
        self._lock: asyncio.Lock | None = None
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, token_url={self.token_url!r}, scopes={self.scopes!r})"

    def invalidate(self) -> bool:
        self._token = None
        self._expires_at = 0.0
        return True

    async def headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(client)}"}

    async def token(self, client: httpx.AsyncClient) -> str:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or time.time() > self._expires_at - self._margin:
                await self._fetch(client)
            assert self._token is not None
            return self._token

    def assertion(self, token_url: str) -> str:
        """The signed client assertion JWT for ``token_url``."""
        import jwt

        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "iat": now,
                  "exp": now + self.assertion_lifetime_s, "jti": uuid.uuid4().hex}
        headers = {"typ": "JWT"}
        if self.kid:
            headers["kid"] = self.kid
        if self.jku:
            headers["jku"] = self.jku
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    async def discover_token_url(self, client: httpx.AsyncClient) -> str:
        url = f"{self.base_url}/.well-known/smart-configuration"
        try:
            resp = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as err:
            raise SourceError(f"{url}: SMART discovery failed ({type(err).__name__}); set the token URL (CHARTWISE_SMART_TOKEN_URL)") from err
        if resp.status_code != 200:
            raise SourceError(f"{url}: SMART discovery answered HTTP {resp.status_code}; set the token URL (CHARTWISE_SMART_TOKEN_URL)")
        try:
            endpoint = resp.json().get("token_endpoint")
        except ValueError:
            endpoint = None
        if not isinstance(endpoint, str) or not endpoint:
            raise SourceError(f"{url}: no token_endpoint in the SMART configuration; set the token URL (CHARTWISE_SMART_TOKEN_URL)")
        return endpoint

    async def _fetch(self, client: httpx.AsyncClient) -> None:
        if not self.token_url:
            self.token_url = await self.discover_token_url(client)
        form = {"grant_type": "client_credentials", "scope": self.scopes,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(self.token_url)}
        started = time.monotonic()
        try:
            resp = await client.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as err:
            raise SourceError(f"{self.token_url}: token request failed ({type(err).__name__})") from err
        if resp.status_code != 200:
            error = ""
            try:
                body = resp.json()
                error = f": {body.get('error', '')} {body.get('error_description', '')}".rstrip()
            except ValueError:
                pass
            raise SourceError(f"{self.token_url}: SMART token request for client {self.client_id!r} refused "
                              f"(HTTP {resp.status_code}{error[:200]}); check the client id, key and scopes")
        try:
            body = resp.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError) as err:
            raise SourceError(f"{self.token_url}: token response has no access_token") from err
        lifetime = body.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else 300.0
        self._token = token
        self._expires_at = time.time() + lifetime
        # refresh a minute early, or a fifth of the lifetime early for short-lived tokens
        self._margin = min(REFRESH_MARGIN_S, lifetime / 5)
        self.tokens_fetched += 1
        log.info("smart token fetched client=%s expires_in=%.0fs took=%.3fs", self.client_id, lifetime,
                 time.monotonic() - started)


def _load_key(path: Path, alg: str | None):
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
    except ImportError as err:  # pragma: no cover - cryptography is a dependency
        raise ConfigError("SMART backend services need the 'cryptography' and 'PyJWT' packages") from err
    if not path.exists():
        raise ConfigError(f"{path}: SMART private key file not found (CHARTWISE_SMART_KEY_FILE)")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: not an unencrypted PEM private key (RSA or EC P-384)") from err
    if isinstance(key, rsa.RSAPrivateKey):
        default = "RS384"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        default = "ES384"
    else:
        raise ConfigError(f"{path}: SMART keys must be RSA or EC")
    return key, (alg or default)
