"""The OpenAI-compatible client against a real chat-completions server on 127.0.0.1.

The server replays response shapes recorded from vLLM (``vllm serve google/medgemma-27b-it``).
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from chartwise.agent.models import BackendConfig, Generation, collect, load_backend
from chartwise.agent.models.openai_backend import BackendError, OpenAIBackend, backoff_delay, retry_after_seconds
from chartwise.agent.models.vertex import VertexBackend, vertex_chat_url
from chartwise.fhir.errors import ConfigError
from _loopback import LoopbackServer, QuietHandler

PNG = Path("/work/shared/data/images/nih-cxr14/00000001_000.png")
MODEL = "google/medgemma-27b-it"


def vllm_completion(content: str, finish: str = "stop", prompt_tokens: int = 22, completion_tokens: int = 18) -> dict:
    return {
        "id": "chatcmpl-3f1c2b9d8e7a4b5c", "object": "chat.completion", "created": 1735689600, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": None, "content": content,
                                             "tool_calls": []},
                     "logprobs": None, "finish_reason": finish, "stop_reason": 106}],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                  "completion_tokens": completion_tokens, "prompt_tokens_details": None},
        "prompt_logprobs": None, "kv_transfer_params": None,
    }


def vllm_stream(pieces: list[str], usage: tuple[int, int] = (22, 5)) -> list[str]:
    base = {"id": "chatcmpl-9a8b7c", "object": "chat.completion.chunk", "created": 1735689600, "model": MODEL}
    events = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                   "finish_reason": None}])]
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        events.append(dict(base, choices=[{"index": 0, "delta": {"content": p}, "logprobs": None,
                                           "finish_reason": "stop" if last else None,
                                           **({"stop_reason": 106} if last else {})}]))
    events.append(dict(base, choices=[], usage={"prompt_tokens": usage[0], "total_tokens": sum(usage),
                                                "completion_tokens": usage[1]}))
    return [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]


class Reply:
    def __init__(self, status=200, body=None, sse=None, headers=None, delay=0.0):
        self.status, self.body, self.sse, self.headers, self.delay = status, body, sse, headers or {}, delay


class ChatServer:
    """Scripted chat-completions server: each request pops the next Reply (the last one repeats)."""

    def __init__(self):
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                reply = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.sse is not None:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for ev in reply.sse:
                        self.wfile.write(ev.encode())
                        self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_json(reply.body if reply.body is not None else {}, reply.status, reply.headers)

        self._server = LoopbackServer(Handler)
        self.base_url = self._server.base_url

    def close(self):
        self._server.close()


@pytest.fixture(scope="module")
def server():
    s = ChatServer()
    yield s
    s.close()


@pytest.fixture
def backend(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server.requests.clear()
    b = OpenAIBackend(BackendConfig(backend="openai", model=MODEL, base_url=server.base_url, retries=2,
                                    backoff_s=0.01, timeout_s=0.5, connect_timeout_s=0.5))
    yield b
    b.close()


def test_non_streaming(server, backend):
    server.script = [Reply(body=vllm_completion("HbA1c was 7.9% [Observation/abc]."))]
    gen = backend.generate([{"role": "user", "content": "Last HbA1c?"}], max_new_tokens=64, stop=["\n\n"])
    assert isinstance(gen, Generation)
    assert gen.text == "HbA1c was 7.9% [Observation/abc]."
    assert gen.usage.prompt_tokens == 22 and gen.usage.completion_tokens == 18 and gen.usage.source == "server"
    req = server.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == MODEL and req["body"]["max_tokens"] == 64 and req["body"]["stop"] == ["\n\n"]


def test_images_sent_as_data_urls(server, backend):
    server.script = [Reply(body=vllm_completion("Cardiomegaly."))]
    backend.generate("Describe.", images=[PNG, PNG])
    content = server.requests[-1]["body"]["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    assert content[-1] == {"type": "text", "text": "Describe."}


def test_thoughts_stripped_non_streaming(server, backend):
    server.script = [Reply(body=vllm_completion("<unused94>thought\nreasoning...<unused95>Final answer."))]
    gen = backend.generate("q")
    assert gen.text == "Final answer." and "reasoning" in (gen.thoughts or "")


def test_streaming_sse_with_thoughts_split_across_chunks(server, backend):
    server.script = [Reply(sse=vllm_stream(["<unu", "sed94>thinking hard<unus", "ed95>Heart ", "is enlarged."]))]
    chunks = list(backend.generate("q", stream=True))
    assert "".join(c.text for c in chunks) == "Heart is enlarged."
    assert chunks[-1].usage.prompt_tokens == 22 and chunks[-1].finish_reason == "stop"
    assert server.requests[-1]["body"]["stream"] is True
    assert server.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_429_with_retry_after_then_success(server, backend):
    server.script = [Reply(status=429, body={"error": {"message": "rate limited"}}, headers={"Retry-After": "0.2"}),
                     Reply(body=vllm_completion("ok"))]
    t0 = time.perf_counter()
    gen = backend.generate("q")
    assert gen.text == "ok" and len(server.requests) == 2
    assert time.perf_counter() - t0 >= 0.2


def test_503_then_success(server, backend):
    server.script = [Reply(status=503, body={"error": "overloaded"}), Reply(status=502, body={}),
                     Reply(body=vllm_completion("ok"))]
    assert backend.generate("q").text == "ok" and len(server.requests) == 3


def test_retries_exhausted_is_one_line(server, backend):
    server.script = [Reply(status=503, body={"error": {"message": "down\nfor maintenance"}})]
    with pytest.raises(BackendError) as ei:
        backend.generate("q")
    assert "\n" not in str(ei.value) and "503" in str(ei.value) and len(server.requests) == 3


def test_bad_request_not_retried(server, backend):
    server.script = [Reply(status=400, body={"object": "error", "message": "max_tokens too large", "code": 400})]
    with pytest.raises(BackendError, match="max_tokens too large"):
        backend.generate("q")
    assert len(server.requests) == 1


def test_404_names_base_url(server, backend):
    server.script = [Reply(status=404, body={"detail": "Not Found"})]
    with pytest.raises(ConfigError, match="base-url"):
        backend.generate("q")


def test_timeout(server, monkeypatch):
    server.script = [Reply(body=vllm_completion("late"), delay=1.0)]
    b = OpenAIBackend(BackendConfig(backend="openai", model=MODEL, base_url=server.base_url, retries=1,
                                    backoff_s=0.01, timeout_s=0.2))
    with pytest.raises(BackendError) as ei:
        b.generate("q")
    assert "\n" not in str(ei.value) and "timeout" in str(ei.value).lower()


def test_unreachable_server_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = load_backend(BackendConfig(backend="openai", base_url=f"http://127.0.0.1:{port}/v1", retries=1,
                                   backoff_s=0.01))
    with pytest.raises(ConfigError) as ei:
        b.generate("q")
    msg = str(ei.value)
    assert "\n" not in msg and "cannot reach" in msg and "--base-url" in msg


def test_missing_base_url():
    with pytest.raises(ConfigError, match="CHARTWISE_BASE_URL"):
        load_backend(BackendConfig(backend="openai"))


def test_concurrency_limit(server, monkeypatch):
    server.script = [Reply(body=vllm_completion("ok"), delay=0.15)]
    b = OpenAIBackend(BackendConfig(backend="openai", model=MODEL, base_url=server.base_url, concurrency=2))
    active, peak, lock = [0], [0], threading.Lock()
    real_send = b._send

    def counting_send(*a, **k):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real_send(*a, **k)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(b, "_send", counting_send)
    threads = [threading.Thread(target=b.generate, args=("q",)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_async_generate(server, backend):
    server.script = [Reply(status=429, headers={"Retry-After": "0"}, body={}), Reply(body=vllm_completion("async ok"))]

    async def main():
        return await asyncio.gather(*(backend.agenerate("q") for _ in range(3)))

    gens = asyncio.run(main())
    assert [g.text for g in gens] == ["async ok"] * 3


def test_usage_estimated_when_server_omits_it(server, backend):
    body = vllm_completion("x" * 40)
    del body["usage"]
    server.script = [Reply(body=body)]
    gen = backend.generate("y" * 80)
    assert gen.usage.source == "estimate" and gen.usage.completion_tokens == 10
    assert backend.count_tokens("abcdefgh") == 2


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") <= 1
    cfg = BackendConfig(backoff_s=0.5, max_backoff_s=4)
    assert [backoff_delay(i, cfg) for i in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_delay(0, cfg, "2") == 2.0


def test_vertex_preset_without_network(server):
    assert vertex_chat_url("my-proj", "us-central1", "1234567890") == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/"
        "endpoints/1234567890/chat/completions")
    cfg = BackendConfig(backend="vertex", model=MODEL, vertex_project="my-proj", vertex_region="us-central1",
                        vertex_endpoint="1234567890")
    calls = []

    def token():
        calls.append(1)
        return "ya29.test-token"

    b = VertexBackend(cfg, token_provider=token)
    assert b.url.startswith("https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/")
    b.close()
    # same preset pointed at the local server: the bearer token comes from the provider
    server.script = [Reply(body=vllm_completion("vertex ok"))]
    local = VertexBackend(cfg, token_provider=token, url=server.base_url + "/chat/completions")
    assert local.generate("q").text == "vertex ok"
    assert server.requests[-1]["auth"] == "Bearer ya29.test-token" and calls


def test_vertex_missing_settings_and_extra(monkeypatch):
    with pytest.raises(ConfigError, match="vertex-project"):
        VertexBackend(BackendConfig(backend="vertex"), token_provider=lambda: "t")
    import builtins

    real_import = builtins.__import__

    def no_google(name, *a, **k):
        if name.startswith("google.auth") or name == "google":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_google)
    with pytest.raises(ConfigError, match=r"chartwise\[vertex\]"):
        load_backend(BackendConfig(backend="vertex", vertex_project="p", vertex_region="r", vertex_endpoint="e"))


def test_stream_collect_round_trip(server, backend):
    server.script = [Reply(sse=vllm_stream(["A", "B", "C"], usage=(7, 3)))]
    gen = collect(backend.generate("q", stream=True))
    assert gen.text == "ABC" and gen.usage.completion_tokens == 3
