"""Evaluation figures without a model: ``chartwise eval --suite all --backend none`` on the shipped sets.

    python bench/eval.py [--limit N] [--out DIR]

Prints one Markdown table: suite, metric, value, and the baseline each metric is read against
(MedAgentBench: the published refsol answer; chart QA: the gold keys/answers computed from raw
JSON, perfect = 1.0; literature: the share of items a random pick of k out of the corpus would hit).
"""
from __future__ import annotations

import argparse
import tempfile

from chartwise.eval_report import run_eval, write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    r = run_eval(suites=["medagentbench", "chartqa", "literature"], limit=a.limit)
    write_report(r, a.out or tempfile.mkdtemp(prefix="chartwise-eval-"))
    lit = r["suites"]["literature"]
    n_corpus, k = max(1, len(lit["items"])), lit["metrics"]["k"]
    base = {"accuracy": "refsol answer (1.0)", "sol_agreement": "shipped sol (1.0)",
            "evidence_recall": "gold keys (1.0)", "evidence_recall_at_all": "gold keys (1.0)",
            "gold_verified": "raw JSON (1.0)", f"recall_at_{k}": f"random {k}/{n_corpus} = {k / n_corpus:.3f}",
            "recall_at_1": f"random 1/{n_corpus} = {1 / n_corpus:.3f}", "mrr": "–"}
    print("| suite | metric | value | baseline | seconds |")
    print("|---|---|---|---|---|")
    for name, s in r["suites"].items():
        for key, v in s["metrics"].items():
            if key in base and isinstance(v, float):
                print(f"| {name} | {key} | {v:.3f} | {base[key]} | {s['seconds']} |")
    m = r["suites"]
    print(f"eval --backend none: MedAgentBench {m['medagentbench']['metrics']['accuracy']:.3f} on "
          f"{m['medagentbench']['metrics']['graded']} graded tasks; chart QA evidence recall "
          f"{m['chartqa']['metrics']['evidence_recall']:.3f} over {m['chartqa']['metrics']['items']} items; "
          f"PubMedQA recall@{k} {lit['metrics'][f'recall_at_{k}']:.3f} over {lit['metrics']['items']} items")


if __name__ == "__main__":
    main()
