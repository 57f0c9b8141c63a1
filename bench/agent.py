"""Agent cost benchmark: LLM calls and prompt tokens per question and per chart summary.

A counting backend replays scripted outputs (plan: "enough"; answers restate the first evidence
lines with their citations) while the graph builds its real prompts; prompt tokens are counted as
ceil(chars / 4). Baselines, counted on the same records:
  * whole record: every clinical fact of the patient in one prompt;
  * per resource type: one extraction call per resource type (the MedGemma EHR navigator pattern).

    .venv/bin/python bench/agent.py [--bundles DIR] [--budget 8192] [--limit N]
"""
from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from chartwise.agent import events
from chartwise.agent.api import _context
from chartwise.agent.context import AgentSettings
from chartwise.agent.models import Capabilities, Generation, ModelBackend, StreamChunk, Usage
from chartwise.agent.models.types import as_messages
from chartwise.fhir.store import load

QUESTIONS = ["What was the most recent systolic blood pressure?", "What was the last body weight?"]
LINE = re.compile(r"^\[([^\]]+)\] (.*)$", re.M)


def tok(text: str) -> int:
    return math.ceil(len(text) / 4)


class CountingBackend(ModelBackend):
    name = "counting"
    model_id = "counting"

    def __init__(self, max_context: int) -> None:
        self._caps = Capabilities(vision=False, max_context=max_context, max_output=1024)
        self.calls: list[int] = []

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def count_tokens(self, x) -> int:
        return tok(x) if isinstance(x, str) else sum(tok(m.content) + 4 for m in as_messages(x))

    def _generate(self, messages, *, max_new_tokens, temperature, stop):
        prompt = "\n".join(m.content for m in messages)
        pt = self.count_tokens(messages)
        self.calls.append(pt)
        if "Decide what else" in prompt:
            text = '{"final": "enough"}'
        else:
            items = LINE.findall(prompt)[:2]
            text = " ".join(f"{t} [{k}]." for k, t in items) or "\n".join(re.findall(r"^(?:Period )?\S+: (.+\])\.?$", prompt, re.M)[:2])
        return Generation(text=text, usage=Usage(prompt_tokens=pt, completion_tokens=tok(text), source="estimate"), model="counting")

    def _stream(self, messages, **kw):
        g = self._generate(messages, **kw)
        yield StreamChunk(text=g.text)
        yield StreamChunk(usage=g.usage, finish_reason="stop")


def baselines(rec) -> tuple[int, int, int]:
    lines = [f"[{f.key}] {f.line}" for f in rec.facts]
    whole = tok("\n".join(lines)) + 100
    groups = defaultdict(list)
    for f in rec.facts:
        groups[f.key.split("/", 1)[0]].append(f"[{f.key}] {f.line}")
    per_type = [tok("\n".join(g)) + 100 for g in groups.values()]
    return whole, len(per_type), sum(per_type)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", default="/work/shared/data/fhir/synthea-r4/bundles")
    ap.add_argument("--budget", type=int, default=8192, help="context budget (tokens) every prompt must fit")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    files = sorted(Path(a.bundles).glob("*.json"))[: a.limit or None]
    rows = defaultdict(list)
    over = 0
    for f in files:
        records = load(f)
        rec = records.patient(None)
        whole, ntypes, per_type_tokens = baselines(rec)
        rows["whole_tokens"].append(whole)
        rows["whole_over_budget"].append(int(whole > a.budget - 1024))
        rows["type_calls"].append(ntypes)
        rows["type_tokens"].append(per_type_tokens)
        for task, q in [*(("question", q) for q in QUESTIONS), ("summary", "Summarize the chart.")]:
            backend = CountingBackend(a.budget)
            ctx = _context(None, backend=backend, settings=AgentSettings(context_tokens=a.budget), records=records)
            result = list(events(q, context=ctx, task=task))[-1]["result"]
            rows[f"{task}_calls"].append(result["llm_calls"])
            rows[f"{task}_tokens"].append(result["prompt_tokens"])
            rows[f"{task}_max_prompt"].append(max(backend.calls or [0]))
            over += sum(1 for c in backend.calls if c > a.budget)
    print(f"{len(files)} patients, context budget {a.budget} tokens, prompts over budget: {over}")
    print("| measure | median | max |\n|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):g} | {max(v)} |")
    q_calls = rows["question_calls"]
    print(f"single-fact questions with <= 3 LLM calls: {sum(c <= 3 for c in q_calls)}/{len(q_calls)}")
    return 0 if over == 0 and all(c <= 3 for c in q_calls) else 1


if __name__ == "__main__":
    sys.exit(main())
