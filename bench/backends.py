"""Overhead of the model-backend interface on a tiny random-weight Gemma 3 (CPU, seconds).

Run: .venv/bin/python bench/backends.py [--tokens 64] [--repeats 7]

For the text-only and the multimodal (one PNG) tiny model it reports, median over repeats:
  * tokens/s through ``backend.generate`` vs ``model.generate`` called directly on the same
    pre-built inputs (greedy, min_new_tokens = max_new_tokens so both do equal work);
  * time to first token when streaming (``backend.generate(stream=True)``, first chunk) vs the first
    token callback of ``model.generate`` with a streamer.
Overhead = backend time / direct time - 1 (target <= 5%).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PNG = Path("/work/shared/data/images/nih-cxr14/00000001_000.png")


def bench(kind: str, path: Path, tokens: int, repeats: int) -> list[tuple[str, float, float]]:
    import torch

    from chartwise.agent.models import BackendConfig, load_backend

    backend = load_backend(BackendConfig(model=str(path), device="cpu"))
    model = backend.model
    model.generation_config.min_new_tokens = tokens  # equal work: no early EOS on either path
    messages = [{"role": "system", "content": "You are a careful clinician."},
                {"role": "user", "content": "Summarize the chart: HbA1c 7.9% on 2019-03-02, metformin 500 mg."}]
    images = [PNG] if kind == "multimodal" else None
    from chartwise.agent.models.types import as_messages, attach_images

    inputs = backend._inputs(attach_images(as_messages(messages), images))
    kwargs = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=backend.tokenizer.pad_token_id)

    def direct() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        assert out.shape[1] - inputs["input_ids"].shape[1] == tokens
        return time.perf_counter() - t0

    def through_backend() -> float:
        t0 = time.perf_counter()
        gen = backend.generate(messages, images=images, max_new_tokens=tokens)
        assert gen.usage.completion_tokens == tokens
        return time.perf_counter() - t0

    def ttft_direct() -> float:
        # the first token straight from the model: a one-token greedy generate on the same inputs, run
        # in a worker thread like the streaming backend does (torch's intra-op threading differs by thread)
        def one() -> None:
            with torch.inference_mode():
                model.generate(**inputs, **{**kwargs, "max_new_tokens": 1, "min_new_tokens": 1})

        t0 = time.perf_counter()
        worker = threading.Thread(target=one)
        worker.start()
        worker.join()
        return time.perf_counter() - t0

    def ttft_backend() -> float:
        t0 = time.perf_counter()
        stream = backend.generate(messages, images=images, max_new_tokens=tokens, stream=True)
        next(iter(stream))
        first = time.perf_counter() - t0
        for _ in stream:
            pass
        return first

    for f in (direct, through_backend):  # warm-up
        f()
    d, b, td, tb = [], [], [], []
    for _ in range(repeats):  # interleave so drift hits both alike
        d.append(direct())
        b.append(through_backend())
        td.append(ttft_direct())
        tb.append(ttft_backend())
    md, mb = statistics.median(d), statistics.median(b)
    return [
        (f"{kind}: tokens/s", tokens / mb, tokens / md),
        (f"{kind}: time to first token (ms)", 1000 * statistics.median(tb), 1000 * statistics.median(td)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    from _tiny_gemma import build_tiny_multimodal, build_tiny_text

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench("text", build_tiny_text(Path(tmp) / "text"), args.tokens, args.repeats)
        rows += bench("multimodal", build_tiny_multimodal(Path(tmp) / "mm"), args.tokens, args.repeats)
    print(f"tiny Gemma 3, CPU ({torch.get_num_threads()} threads), greedy, {args.tokens} new tokens, "
          f"median of {args.repeats}")
    print(f"{'measure':<40} {'backend':>10} {'direct':>10} {'ratio':>7}")
    for name, ours, base in rows:
        print(f"{name:<40} {ours:>10.1f} {base:>10.1f} {ours / base:>7.3f}")
    for (n, o, b) in rows:
        if "tokens/s" in n:
            print(f"{n.split(':')[0]} interface overhead: {100 * (b / o - 1):+.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
