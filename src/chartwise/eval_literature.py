"""Literature suite: PubMedQA items (question, abstract, yes/no/maybe, PMID).

* ``recall@k`` (no model): the item's own abstract ``PMID:n`` among the top k results of the
  literature search the agent uses (``search_literature``), queried with the item's question; and
  the mean reciprocal rank of it;
* ``decision accuracy`` (with a model): yes/no/maybe read from the agent's literature answer.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import eval_graders as g

DEFAULT_CORPUS = "/work/shared/data/literature/pubmedqa-dev.json"


def default_corpus() -> str:
    """The full dev corpus when present, else the slice shipped in the package."""
    if Path(DEFAULT_CORPUS).exists():
        return DEFAULT_CORPUS
    here = Path(__file__).parent / "data"
    for cand in sorted(here.rglob("*pubmedqa*.json")):
        return str(cand)
    return DEFAULT_CORPUS


def load_items(corpus: str | Path) -> list[dict[str, Any]]:
    text = Path(corpus).read_text("utf-8")
    if str(corpus).endswith(".jsonl"):
        raw = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        raw = json.loads(text)
    rows = raw.items() if isinstance(raw, dict) else ((str(r.get("pmid")), r) for r in raw)
    out = []
    for pmid, v in rows:
        out.append({"pmid": str(pmid), "question": v.get("QUESTION") or v.get("question") or v.get("title") or "",
                    "decision": (v.get("final_decision") or v.get("decision") or v.get("answer") or "").lower()})
    return out


def _search(query: str, k: int, corpus: str) -> list[str]:
    from chartwise.agent.toolbox import make_toolbox

    box = make_toolbox(None, literature=True, corpus=corpus)
    return [e["key"] for e in box.call("search_literature", {"query": query, "limit": k})]


def run_items(items: list[dict[str, Any]], corpus: str, *, k: int = 5, backend: Any = None,
              agent_settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out = []
    for it in items:
        t0 = time.perf_counter()
        keys = _search(it["question"], k, corpus)
        hit, rank = g.retrieval_hit(keys, it["pmid"], k)
        row: dict[str, Any] = {"id": f"PMID:{it['pmid']}", "question": it["question"], "gold": it["decision"],
                               "hit": hit, "rank": rank, "retrieved": keys}
        if backend is not None:
            from chartwise.agent import literature

            res = literature(it["question"] + " Begin your answer with 'Answer: yes', 'Answer: no' or 'Answer: maybe'.",
                             backend=backend, corpus=corpus, settings=agent_settings)
            answer = res.get("answer") or ""
            pred = g.pubmedqa_decision(answer)
            row.update({"answer": answer, "decision": pred, "correct": pred == it["decision"],
                        "cited": [c["key"] for c in res.get("citations") or []]})
        row["seconds"] = round(time.perf_counter() - t0, 3)
        out.append(row)
    return out


def summarize(rows: list[dict[str, Any]], k: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {
        "items": len(rows), "k": k,
        f"recall_at_{k}": g.mean(1.0 if r["hit"] else 0.0 for r in rows),
        "recall_at_1": g.mean(1.0 if r["rank"] == 1 else 0.0 for r in rows),
        "mrr": g.mean(1.0 / r["rank"] if r["rank"] else 0.0 for r in rows),
    }
    if rows and "decision" in rows[0]:
        out["decision_accuracy"] = g.decision_accuracy((r["decision"], r["gold"]) for r in rows)
        out["own_abstract_cited"] = g.mean(1.0 if r["id"] in r.get("cited", []) else 0.0 for r in rows)
    return out
