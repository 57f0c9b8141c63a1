"""What the graph's nodes need besides the state: the model backend, the records, settings.

Passed at run time as LangGraph's ``context`` (never checkpointed). When a graph is served by
``langgraph dev`` without a context, :func:`default_context` builds one from the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from .toolbox import Toolbox, make_toolbox


class AgentSettings(BaseModel):
    """Knobs of the graph. ``context_tokens`` caps every prompt (default: the backend's own budget)."""

    max_rounds: int = Field(default=2, ge=0, description="re-plan rounds after the first plan")
    max_calls_per_round: int = Field(default=4, ge=1)
    max_parallel: int = Field(default=4, ge=1, description="tool calls in flight at once")
    min_evidence: int = Field(default=1, ge=0, description="fewer items than this is 'thin': re-plan")
    evidence_tokens: int = Field(default=4000, gt=0, description="budget of the deterministic seed pack")
    context_tokens: int | None = Field(default=None, gt=0, description="prompt budget (None: the backend's)")
    window_tokens: int = Field(default=3000, gt=0, description="evidence per period of a chart summary")
    plan_tokens: int = 256
    answer_tokens: int = 512
    summary_tokens: int = 384
    repair_rounds: int = Field(default=1, ge=0, le=1)
    max_summary_levels: int = 3
    use_model_tools: bool = True


@dataclass
class AgentContext:
    backend: Any = None                       # ModelBackend | None
    records: Any = None                       # RecordSet | None
    settings: AgentSettings = field(default_factory=AgentSettings)
    corpus: str | None = None
    deid: Any = None                          # DeidSettings | None (None: from CHARTWISE_DEID*)
    _toolboxes: dict[tuple[str | None, bool], Toolbox] = field(default_factory=dict)
    _deidentifiers: dict[str | None, Any] = field(default_factory=dict)
    _guards: dict[tuple[str | None, bool], Any] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        """Whether prompts leave the machine (OpenAI-compatible / Vertex backends)."""
        from .remote import is_remote
        return is_remote(self.backend)

    def deid_settings(self) -> Any:
        if self.deid is None:
            from chartwise.fhir.deid import DeidSettings
            self.deid = DeidSettings.from_env()
        return self.deid

    def deidentifying(self) -> bool:
        """De-identification is on for this run (remote backend, or opted in for a local one)."""
        return self.backend is not None and self.records is not None and self.deid_settings().active(self.remote)

    def llm(self, patient: str | None) -> Any:
        """The backend the nodes call: wrapped in de-identification when the policy says so."""
        if self.backend is None or not self.deidentifying():
            return self.backend
        if patient not in self._deidentifiers:
            rec = self.patient_record(patient)
            if rec is None or not isinstance(getattr(rec, "patient", None), dict):
                return self.backend
            from chartwise.fhir.deid import Deidentifier

            from .remote import DeidBackend
            texts = [f"{f.line}\n{f.text or ''}" for f in getattr(rec, "facts", None) or []]
            self._deidentifiers[patient] = DeidBackend(self.backend, Deidentifier.for_record(rec, self.deid_settings()),
                                                       texts)
        return self._deidentifiers[patient]

    def guard(self, patient: str | None, literature: bool) -> Any:
        """The plan guard for this patient (tool calls only from the question)."""
        key = (patient, literature)
        if key not in self._guards:
            from .guard import PlanGuard
            box = self.toolbox(patient, literature)
            self._guards[key] = PlanGuard(self.patient_record(patient) if self.records is not None else None,
                                          [s.name for s in box.specs()])
        return self._guards[key]

    @property
    def model_name(self) -> str:
        if self.backend is None:
            return "none"
        return getattr(self.backend, "model_id", "") or getattr(self.backend, "name", "model")

    def patient_record(self, patient: str | None) -> Any:
        if self.records is None:
            return None
        return self.records.patient(patient)

    def toolbox(self, patient: str | None, literature: bool) -> Toolbox:
        key = (patient, literature)
        if key not in self._toolboxes:
            self._toolboxes[key] = make_toolbox(self.patient_record(patient) if self.records is not None else None,
                                                literature=literature, corpus=self.corpus)
        return self._toolboxes[key]

    def prompt_budget(self) -> int:
        """Most tokens one prompt may use."""
        limit = self.settings.context_tokens
        if self.backend is not None:
            b = self.backend.budget().max_prompt
            limit = min(limit, b) if limit else b
        return limit or 8192

    def count(self, messages: Any) -> int:
        if self.backend is not None:
            return int(self.backend.count_tokens(messages))
        from .evidence import estimate
        text = messages if isinstance(messages, str) else "\n".join(
            m.content if hasattr(m, "content") else str(m.get("content", "")) for m in messages)
        return estimate(text)


def default_context() -> AgentContext:
    """A context from the environment (CHARTWISE_* backend settings, CHARTWISE_SOURCE for the records)."""
    import os

    from chartwise.agent.models import load_backend, resolve_config
    from chartwise.fhir.store import load

    source = os.environ.get("CHARTWISE_SOURCE")
    if not source:
        from importlib import resources
        source = str(resources.files("chartwise").joinpath("data", "sample_patient.json"))
    return AgentContext(backend=load_backend(resolve_config({})), records=load(source))
