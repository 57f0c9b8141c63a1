"""OpenAI-compatible chat-completions client (vLLM, TGI, llama.cpp server, Ollama, Vertex AI).

Images travel as ``data:`` URLs in ``image_url`` content parts. Requests are retried with exponential
backoff on 429 and 5xx (honouring ``Retry-After``) and on connection errors; at most ``concurrency``
requests are in flight per backend (threads and asyncio tasks counted separately). Streaming reads
server-sent events and asks for usage in the last event (``stream_options.include_usage``).
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from chartwise.fhir.errors import ChartwiseError, ConfigError
from chartwise.fhir.httputil import retry_after_seconds  # noqa: F401  (re-exported for callers)

from .base import Messages, ModelBackend, VisibleText, truncate_at_stop
from .budget import estimate_tokens
from .config import BackendConfig
from .images import image_to_data_url, load_images
from .thinking import split_thoughts
from .types import Capabilities, Generation, Message, StreamChunk, Usage, as_messages, attach_images

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
IMAGE_TOKENS_ESTIMATE = 256  # MedGemma encodes each image as 256 soft tokens


class BackendError(ChartwiseError):
    """The model server answered with an error, or kept failing after the retries."""



def backoff_delay(attempt: int, config: BackendConfig, retry_after: str | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): Retry-After when given, else exponential."""
    hinted = retry_after_seconds(retry_after)
    delay = hinted if hinted is not None else config.backoff_s * (2 ** attempt)
    return min(delay, config.max_backoff_s)


def _server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        msg = err.get("message", err) if isinstance(err, dict) else err
        return " ".join(str(msg).split())[:300]
    except (ValueError, json.JSONDecodeError):
        return " ".join(resp.text.split())[:300]


class OpenAIBackend(ModelBackend):
    name = "openai"

    def __init__(self, config: BackendConfig, *, url: str | None = None,
                 token_provider: Callable[[], str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if url is None and not config.base_url:
            raise ConfigError("the openai backend needs a server: pass --base-url http://host:8000/v1 "
                              "(env CHARTWISE_BASE_URL)")
        self.config = config
        self.model_id = config.model
        self.url = url or f"{config.base_url}/chat/completions"
        self._token_provider = token_provider
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self._timeout = timeout
        self._sem = threading.BoundedSemaphore(config.concurrency)
        self._async_sem: asyncio.Semaphore | None = None
        self._tokenizer: Any = None
        self._caps = Capabilities(vision=True, max_context=config.max_context, max_output=config.max_output,
                                  native_tool_calls=False, thinking=config.thinking or "27b" in config.model.lower())

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    # -- request building -----------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = self._token_provider() if self._token_provider else self.config.resolved_api_key()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _wire_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        from .hf_backend import apply_thinking

        msgs = apply_thinking(messages, self.config.thinking and self._caps.thinking)
        out: list[dict[str, Any]] = []
        for m in msgs:
            if m.images:
                parts: list[dict[str, Any]] = [
                    {"type": "image_url", "image_url": {"url": image_to_data_url(img)}}
                    for img in load_images(m.images, max_side=self.config.image_max_side)
                ]
                parts.append({"type": "text", "text": m.content})
                out.append({"role": m.role, "content": parts})
            else:
                out.append({"role": m.role, "content": m.content})
        return out

    def build_request(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                      stop: list[str], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "messages": self._wire_messages(messages),
                                "max_tokens": max_new_tokens, "temperature": temperature, "stream": stream}
        if stop:
            body["stop"] = list(stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    # -- errors ---------------------------------------------------------------------------------
    def _unreachable(self, exc: Exception) -> ChartwiseError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return BackendError(f"model server {self.url} did not answer within {self.config.timeout_s:g}s "
                                f"after {self.config.retries + 1} tries: raise --timeout (env CHARTWISE_TIMEOUT) "
                                f"or check the server load")
        return ConfigError(f"cannot reach the model server at {self.url} ({type(exc).__name__}): start the server "
                           f"or fix --base-url (env CHARTWISE_BASE_URL)")

    def _status_error(self, resp: httpx.Response) -> ChartwiseError:
        msg = _server_message(resp)
        if resp.status_code in (401, 403):
            return ConfigError(f"model server {self.url} refused the credentials (HTTP {resp.status_code}: {msg}); "
                               f"set CHARTWISE_API_KEY or ${self.config.api_key_env}")
        if resp.status_code == 404:
            return ConfigError(f"model server {self.url} answered 404 ({msg}): check --base-url (it usually ends "
                               f"in /v1) and --model (the served model name)")
        return BackendError(f"model server {self.url} answered HTTP {resp.status_code}: {msg}")

    # -- sync transport -------------------------------------------------------------------------
    def _send(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """POST with retries; returns an open response with a 2xx status (caller closes it)."""
        attempt = 0
        while True:
            try:
                req = self._client.build_request("POST", self.url, json=body, headers=self._headers())
                resp = self._client.send(req, stream=stream)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt >= self.config.retries:
                    raise self._unreachable(exc) from None
                time.sleep(backoff_delay(attempt, self.config))
                attempt += 1
                continue
            if resp.status_code < 400:
                return resp
            if stream:
                resp.read()
            resp.close()
            if resp.status_code in RETRY_STATUS and attempt < self.config.retries:
                time.sleep(backoff_delay(attempt, self.config, resp.headers.get("retry-after")))
                attempt += 1
                continue
            raise self._status_error(resp)

    def _parse_completion(self, data: dict[str, Any], messages: list[Message], stop: list[str]) -> Generation:
        try:
            choice = data["choices"][0]
            raw = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"model server {self.url} sent a reply without choices[0].message") from None
        text, thoughts = split_thoughts(raw)
        text, stopped = truncate_at_stop(text, stop)
        usage = self._usage(data.get("usage"), messages, raw)
        finish = "length" if choice.get("finish_reason") == "length" and not stopped else "stop"
        return Generation(text=text.strip(), usage=usage, finish_reason=finish, model=data.get("model", self.model_id),
                          thoughts=thoughts or None)

    def _usage(self, usage: dict[str, Any] | None, messages: list[Message], completion: str) -> Usage:
        if usage and "prompt_tokens" in usage:
            return Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                         completion_tokens=int(usage.get("completion_tokens") or 0), source="server")
        src = "tokenizer" if self.config.tokenizer else "estimate"
        return Usage(prompt_tokens=self.count_tokens(messages), completion_tokens=self.count_tokens(completion),
                     source=src)  # type: ignore[arg-type]

    def _generate(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                  stop: list[str]) -> Generation:
        body = self.build_request(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop,
                                  stream=False)
        with self._sem:
            resp = self._send(body, stream=False)
        try:
            data = resp.json()
        except ValueError:
            raise BackendError(f"model server {self.url} sent a reply that is not JSON") from None
        return self._parse_completion(data, messages, stop)

    def _stream(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                stop: list[str]) -> Iterator[StreamChunk]:
        body = self.build_request(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop,
                                  stream=True)

        def events() -> Iterator[StreamChunk]:
            with self._sem:
                resp = self._send(body, stream=True)
                try:
                    yield from self._sse_chunks(resp.iter_lines(), messages, stop)
                except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                    raise self._unreachable(exc) from None
                finally:
                    resp.close()

        return events()

    def _sse_chunks(self, lines: Any, messages: list[Message], stop: list[str]) -> Iterator[StreamChunk]:
        view = VisibleText(stop)
        raw_parts: list[str] = []
        usage_data: dict[str, Any] | None = None
        finish: str | None = None
        for line in lines:
            if not line or not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                event = json.loads(payload)
            except json.JSONDecodeError:
                continue
            if event.get("usage"):
                usage_data = event["usage"]
            for choice in event.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if not delta or view.stopped:
                    continue
                raw_parts.append(delta)
                visible = view.feed(delta)
                if visible:
                    yield StreamChunk(text=visible)
        usage = self._usage(usage_data, messages, "".join(raw_parts))
        yield StreamChunk(text=view.tail(), usage=usage,
                          finish_reason="length" if finish == "length" and not view.stopped else "stop")

    # -- async ----------------------------------------------------------------------------------
    async def agenerate(self, messages: Messages, images: Sequence[Any] | None = None, *,
                        max_new_tokens: int | None = None, temperature: float = 0.0,
                        stop: Sequence[str] | None = None) -> Generation:
        """Async twin of ``generate(stream=False)`` for fan-out (many patients, many questions)."""
        if self._async_sem is None:
            self._async_sem = asyncio.Semaphore(self.config.concurrency)
        msgs = attach_images(as_messages(messages), list(images) if images else None)
        stops = [s for s in (stop or []) if s]
        body = self.build_request(msgs, max_new_tokens=max_new_tokens or self._caps.max_output,
                                  temperature=temperature, stop=stops, stream=False)
        async with self._async_sem, httpx.AsyncClient(timeout=self._timeout) as client:
            attempt = 0
            while True:
                try:
                    resp = await client.post(self.url, json=body, headers=self._headers())
                except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                    if attempt >= self.config.retries:
                        raise self._unreachable(exc) from None
                    await asyncio.sleep(backoff_delay(attempt, self.config))
                    attempt += 1
                    continue
                if resp.status_code < 400:
                    break
                if resp.status_code in RETRY_STATUS and attempt < self.config.retries:
                    await asyncio.sleep(backoff_delay(attempt, self.config, resp.headers.get("retry-after")))
                    attempt += 1
                    continue
                raise self._status_error(resp)
        return self._parse_completion(resp.json(), msgs, stops)

    # -- tokens ---------------------------------------------------------------------------------
    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None and self.config.tokenizer:
            from transformers import AutoTokenizer

            from .loading import hub_offline, looks_like_path

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(
                    self.config.tokenizer, local_files_only=hub_offline() or looks_like_path(self.config.tokenizer))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"tokenizer {self.config.tokenizer!r} could not be loaded "
                                  f"({type(exc).__name__}): pass a local tokenizer folder with "
                                  f"CHARTWISE_TOKENIZER, or unset it to estimate tokens as chars/4") from None
        return self._tokenizer

    def count_tokens(self, text_or_messages: Messages) -> int:
        """With ``tokenizer`` configured: the model's own tokenizer (chat template included);
        otherwise the documented estimate ``ceil(chars / 4)`` plus 256 per image."""
        tok = self._load_tokenizer()
        if isinstance(text_or_messages, str):
            if tok is not None:
                return len(tok(text_or_messages, add_special_tokens=False)["input_ids"])
            return estimate_tokens(text_or_messages)
        msgs = as_messages(text_or_messages)
        n_images = sum(len(m.images) for m in msgs)
        if tok is not None and getattr(tok, "chat_template", None):
            chat = [{"role": m.role, "content": m.content} for m in msgs]
            text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            return len(tok(text, add_special_tokens=False)["input_ids"]) + n_images * IMAGE_TOKENS_ESTIMATE
        return (sum(self.count_tokens(m.content) + 4 for m in msgs) + n_images * IMAGE_TOKENS_ESTIMATE)

    def close(self) -> None:
        self._client.close()
