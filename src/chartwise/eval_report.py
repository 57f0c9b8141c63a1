"""``chartwise eval``: run the suites, write ``report.json`` and ``report.md``.

Suites: ``medagentbench`` (MedAgentBench-format tasks graded with its rules), ``chartqa`` (gold keys
and answers from raw data), ``literature`` (PubMedQA). With no model (``backend=None``) every
metric that needs no model is computed; with one, the agent answers and the answers are graded too.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import eval_chartqa, eval_literature, eval_medagentbench

SUITES = ("medagentbench", "chartqa", "literature")
DEFAULT_DATA = os.environ.get("CHARTWISE_EVAL_DATA", "/work/shared/data")


def data_file(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("chartwise").joinpath("data", "eval", name)))


def spread(items: list[dict[str, Any]], n: int | None, key: str) -> list[dict[str, Any]]:
    """The first ``n`` items taken round-robin over ``key`` (so a small slice covers every kind)."""
    if n is None or n >= len(items):
        return items
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        groups[str(it.get(key) if key != "type" else eval_medagentbench.task_type(it["id"]))].append(it)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        for g in groups.values():
            if g and len(out) < n:
                out.append(g.pop(0))
    order = {id(it): i for i, it in enumerate(items)}
    return sorted(out, key=lambda it: order[id(it)])


def _load_subset(root: Path, rel: str, files: list[str]):
    """Only the named bundle files of a folder (symlinked into a temporary folder)."""
    from chartwise.fhir.store import load

    with tempfile.TemporaryDirectory(prefix="chartwise-eval-") as tmp:
        for f in files:
            os.symlink(root / rel / f, Path(tmp) / f)
        return load(tmp)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        ram = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram, "python": platform.python_version(),
            "platform": platform.platform()}


def run_medagentbench(*, data: Path, tasks_file: str | None, fhir: str | None, limit: int | None,
                      backend: Any, agent_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    from chartwise.fhir.store import load

    spec_path = Path(tasks_file) if tasks_file else data_file("medagentbench_synthea.json")
    spec = json.loads(spec_path.read_text("utf-8"))
    tasks = spread(eval_medagentbench.load_tasks(spec_path), limit, "type")
    t0 = time.perf_counter()
    if fhir:
        records, source = load(fhir), fhir
    elif isinstance(spec, dict) and spec.get("files"):
        records = _load_subset(data, spec["source"], sorted(set(spec["files"].values())))
        source = f"{data / spec['source']} ({len(spec['files'])} patients)"
    else:
        raise ValueError(f"{spec_path}: no FHIR source named; pass --fhir PATH or URL")
    load_s = time.perf_counter() - t0
    answer = None
    if backend is not None:
        answer = _model_answer(backend, agent_settings)
    results = eval_medagentbench.run_tasks(tasks, records, answer=answer)
    return {"tasks_file": str(spec_path), "source": source, "load_seconds": round(load_s, 2),
            "metrics": eval_medagentbench.summarize(results), "items": [asdict(r) for r in results]}


def _model_answer(backend: Any, agent_settings: dict[str, Any] | None = None):
    def answer(task: dict[str, Any], records: Any):
        from chartwise.agent import ask

        kind = eval_medagentbench.task_type(task["id"])
        patient = None
        if kind != "task1":
            rec = eval_medagentbench.find_patient(records, str(task.get("eval_MRN")))
            patient = rec.id if rec is not None else None
        elif len(records.patient_keys()) == 1:
            patient = records.patient_keys()[0].split("/", 1)[1]
        res = ask(eval_medagentbench.model_question(task), records, patient=patient or records.patient_keys()[0],
                  backend=backend, settings=agent_settings)
        text = res.get("answer") or ""
        payload = eval_medagentbench.finish_payload(text)
        return (payload if payload is not None else json.dumps([text.strip()[:200]])), \
            [c["key"] for c in res.get("citations") or []]
    return answer


def run_chartqa(*, data: Path, items_file: str | None, limit: int | None, backend: Any, budget: int,
                agent_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    from chartwise.fhir.store import load

    path = Path(items_file) if items_file else data_file("chartqa.json")
    items = spread(eval_chartqa.load_items(path), limit, "category")
    cache: dict[str, Any] = {}
    t0 = time.perf_counter()

    def records_for(item: dict[str, Any]):
        f = item["file"]
        if f not in cache:
            p = Path(f) if Path(f).is_absolute() else data / f
            cache[f] = load(p)
        return cache[f]

    for it in items:
        records_for(it)
    load_s = time.perf_counter() - t0
    rows = eval_chartqa.run_items(items, records_for, backend=backend, budget=budget, agent_settings=agent_settings)
    return {"items_file": str(path), "sources": sorted(cache), "load_seconds": round(load_s, 2),
            "metrics": eval_chartqa.summarize(rows), "items": rows}


def run_literature(*, corpus: str | None, limit: int | None, backend: Any, k: int = 5,
                   agent_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    corpus = corpus or eval_literature.default_corpus()
    items = eval_literature.load_items(corpus)
    if limit is not None:
        items = items[:limit]
    rows = eval_literature.run_items(items, corpus, k=k, backend=backend, agent_settings=agent_settings)
    return {"corpus": corpus, "metrics": eval_literature.summarize(rows, k), "items": rows}


def run_eval(*, suites: list[str], backend: Any = None, backend_name: str = "none", model: str | None = None,
             limit: int | None = None, data: str | None = None, fhir: str | None = None, tasks: str | None = None,
             chartqa: str | None = None, corpus: str | None = None, budget: int = 4000, k: int = 5,
             agent_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the named suites; ``agent_settings`` (AgentSettings fields) go to every agent call."""
    root = Path(data or DEFAULT_DATA)
    report: dict[str, Any] = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": backend_name, "model": model or (getattr(backend, "model_id", None) if backend else None) or "none",
        "data": str(root), "limit": limit, "machine": machine(), "suites": {},
    }
    for s in suites:
        t0 = time.perf_counter()
        if s == "medagentbench":
            out = run_medagentbench(data=root, tasks_file=tasks, fhir=fhir, limit=limit, backend=backend,
                                    agent_settings=agent_settings)
        elif s == "chartqa":
            out = run_chartqa(data=root, items_file=chartqa, limit=limit, backend=backend, budget=budget,
                              agent_settings=agent_settings)
        elif s == "literature":
            out = run_literature(corpus=corpus, limit=limit, backend=backend, k=k, agent_settings=agent_settings)
        else:
            raise ValueError(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
        out["seconds"] = round(time.perf_counter() - t0, 2)
        report["suites"][s] = out
    return report


# ---------------------------------------------------------------------------- Markdown
def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, dict)):
        s = json.dumps(v, ensure_ascii=False)
        return s if len(s) <= 60 else s[:57] + "..."
    return str(v).replace("|", "\\|").replace("\n", " ")[:80]


def _table(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# Chartwise evaluation report", "",
             f"- generated: {report['generated']}",
             f"- backend: `{report['backend']}`, model: `{report['model']}`",
             f"- data: `{report['data']}`" + (f", limit {report['limit']} per suite" if report.get("limit") else ""),
             f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}", ""]
    lines += ["## Summary", "", "| suite | metric | value |", "|---|---|---|"]
    for name, s in report["suites"].items():
        for k, v in s["metrics"].items():
            if isinstance(v, (int, float, type(None))) and not isinstance(v, bool):
                lines.append(f"| {name} | {k} | {_fmt(v)} |")
    lines.append("")
    for name, s in report["suites"].items():
        lines += [f"## {name}", "", f"{s['seconds']} s. " + ", ".join(
            f"{k}: `{v}`" for k, v in s.items() if k in ("tasks_file", "items_file", "source", "corpus"))]
        met = s["metrics"]
        if "by_type" in met:
            lines += ["", "| task type | tasks | graded | correct | accuracy |", "|---|---|---|---|---|"]
            for t, d in met["by_type"].items():
                lines.append(f"| {t} | {d['tasks']} | {d['graded']} | {d['correct']} | {_fmt(d['accuracy'])} |")
            for line in met.get("not_graded", []):
                lines.append(f"\nNot graded: {line}.")
        if "by_category" in met:
            lines += ["", "| category | items | evidence recall |", "|---|---|---|"]
            for c, d in met["by_category"].items():
                lines.append(f"| {c} | {d['items']} | {_fmt(d['evidence_recall'])} |")
        lines += ["", "<details><summary>per item</summary>", ""]
        items = s["items"]
        if name == "medagentbench":
            cols = ["id", "type", "graded", "correct", "answer", "reference", "sol_agrees", "note"]
        elif name == "chartqa":
            cols = ["id", "category", "question", "evidence_recall", "gold_verified"] + (
                ["correct", "abstained", "citation_precision"] if items and "correct" in items[0] else [])
        else:
            cols = ["id", "gold", "hit", "rank"] + (["decision", "correct"] if items and "decision" in items[0] else [])
        lines += _table(items, cols) + ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    j, md = d / "report.json", d / "report.md"
    j.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", "utf-8")
    md.write_text(to_markdown(report), "utf-8")
    return j, md
