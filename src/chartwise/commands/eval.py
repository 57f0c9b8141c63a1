"""``chartwise eval [--suite chartqa|medagentbench|literature|all] [--backend none|transformers|openai]
[--model M] [--limit N] [--out DIR]``: the evaluation suites; writes DIR/report.json and DIR/report.md."""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluation suites (MedAgentBench-format tasks, chart QA, PubMedQA); JSON + Markdown report")
    p.add_argument("--suite", choices=["all", "medagentbench", "chartqa", "literature"], default="all")
    p.add_argument("--backend", choices=["none", "transformers", "openai", "vertex"], default="none",
                   help="none (default): every metric that needs no model")
    p.add_argument("--model", default=None, help="hub id, local folder, or the server's model name")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (…/v1)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N items per suite (spread over task types)")
    p.add_argument("--out", default="eval-report", metavar="DIR", help="report folder (default: eval-report)")
    p.add_argument("--data", default=None, metavar="DIR", help="shared data root (default: CHARTWISE_EVAL_DATA or /work/shared/data)")
    p.add_argument("--fhir", default=None, metavar="PATH|URL", help="FHIR source for the MedAgentBench tasks (default: the task file's)")
    p.add_argument("--tasks", default=None, metavar="FILE", help="MedAgentBench-format task JSON (default: the shipped Synthea set)")
    p.add_argument("--chartqa", default=None, metavar="FILE", help="chart QA items JSON (default: the shipped set)")
    p.add_argument("--corpus", default=None, metavar="FILE", help="PubMedQA-format JSON (default: the dev set)")
    p.add_argument("--budget", type=int, default=4000, help="evidence token budget for chart QA (default 4000)")
    p.add_argument("--k", type=int, default=5, help="literature recall@k (default 5)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chartwise.eval_report import SUITES, run_eval, to_markdown, write_report

    backend = None
    if args.backend != "none":
        from chartwise.agent.models import load_backend, resolve_config

        flags = {k: v for k, v in {"backend": args.backend, "model": args.model, "base_url": args.base_url}.items() if v}
        backend = load_backend(resolve_config(flags))
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    report = run_eval(suites=suites, backend=backend, backend_name=args.backend, model=args.model, limit=args.limit,
                      data=args.data, fhir=args.fhir, tasks=args.tasks, chartqa=args.chartqa, corpus=args.corpus,
                      budget=args.budget, k=args.k)
    j, md = write_report(report, args.out)
    for name, s in report["suites"].items():
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s["metrics"].items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool))
        print(f"{name}: {shown}", file=sys.stderr)
    print(f"wrote {j} and {md}", file=sys.stderr)
    return 0
