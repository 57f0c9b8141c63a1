"""Token budgets: how much of the model's context a prompt may use and when to summarize first.

MedGemma (4B and 27B, multimodal and text) has a 128K-token context; Chartwise reserves 8K for the
answer by default. The agent asks :meth:`TokenBudget.plan` whether an evidence pack fits in one call
or must be summarized step by step, and in how many steps.
"""
from __future__ import annotations

import math

from pydantic import BaseModel, Field

CHARS_PER_TOKEN = 4  # documented estimate when no tokenizer is available (English clinical text ~3.5-4.5)


def estimate_tokens(text: str) -> int:
    """Estimated token count: ``ceil(len(text) / 4)``. Used only when no tokenizer is configured."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


class BudgetPlan(BaseModel):
    """What to do with ``evidence_tokens`` of evidence: answer directly, or summarize in ``steps``
    chunks of at most ``chunk_tokens`` each and answer from the summaries."""

    fits: bool
    evidence_tokens: int
    available_tokens: int
    steps: int
    chunk_tokens: int


class TokenBudget(BaseModel):
    max_context: int = Field(default=131_072, gt=0)
    max_output: int = Field(default=8_192, gt=0)
    safety_margin: int = Field(default=256, ge=0)  # chat-template and tokenizer drift
    used: int = Field(default=0, ge=0)

    @property
    def max_prompt(self) -> int:
        """Largest prompt that still leaves ``max_output`` tokens for the answer."""
        return max(0, self.max_context - self.max_output - self.safety_margin)

    @property
    def remaining(self) -> int:
        """Prompt tokens still available after ``used`` (see :meth:`consume`)."""
        return max(0, self.max_prompt - self.used)

    def fits(self, prompt_tokens: int) -> bool:
        return self.used + prompt_tokens <= self.max_prompt

    def consume(self, tokens: int) -> TokenBudget:
        """A copy with ``tokens`` more counted as used (system prompt, question, tool results...)."""
        return self.model_copy(update={"used": self.used + max(0, tokens)})

    def output_tokens_for(self, prompt_tokens: int) -> int:
        """``max_new_tokens`` to request for a prompt of that size (never past the context)."""
        return max(0, min(self.max_output, self.max_context - prompt_tokens - self.safety_margin))

    def needs_summarization(self, evidence_tokens: int) -> bool:
        return not self.fits(evidence_tokens)

    def plan(self, evidence_tokens: int, *, summary_tokens: int = 1_024) -> BudgetPlan:
        """Decide between one call and step-wise summarization.

        Each summarization step reads at most ``remaining`` tokens of evidence and writes at most
        ``summary_tokens``; the step summaries must together fit in the final call.
        """
        available = self.remaining
        if evidence_tokens <= available:
            return BudgetPlan(fits=True, evidence_tokens=evidence_tokens, available_tokens=available,
                              steps=1, chunk_tokens=evidence_tokens)
        chunk = max(1, available - summary_tokens)
        steps = math.ceil(evidence_tokens / chunk)
        return BudgetPlan(fits=False, evidence_tokens=evidence_tokens, available_tokens=available,
                          steps=steps, chunk_tokens=chunk)


# Context and output limits by model id (substring match, first hit wins).
_MODEL_LIMITS: list[tuple[str, int, int]] = [
    ("medgemma", 131_072, 8_192),
    ("gemma-3", 131_072, 8_192),
]


def default_limits(model: str) -> tuple[int, int]:
    low = model.lower()
    for key, ctx, out in _MODEL_LIMITS:
        if key in low:
            return ctx, out
    return 131_072, 8_192
