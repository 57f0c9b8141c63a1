"""Run every benchmark script in bench/ and write one report: bench/REPORT.md.

    python bench/report.py [--timeout 900] [--only NAME ...] [--out bench/REPORT.md]

Each ``bench/*.py`` (not ``_``-prefixed helpers, not this file) runs as a subprocess with its own
defaults and a timeout. The report starts with the date and the machine (CPU model, cores, RAM),
then a summary table (script, exit status, seconds, the script's last output line), then each
script's printed output verbatim: the tables with their figures and baselines as the script wrote them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    from chartwise.eval_report import machine as probe

    m = probe()
    ram = f"{m['ram_gib']} GiB RAM" if m.get("ram_gib") else "RAM unknown"
    return f"{m['cpu']}, {m['cores']} cores, {ram}, Python {m['python']}, {m['platform']}"


def scripts(only: list[str] | None = None) -> list[Path]:
    out = [p for p in sorted(HERE.glob("*.py")) if not p.name.startswith("_") and p.name != Path(__file__).name]
    if only:
        out = [p for p in out if p.stem in only or p.name in only]
    return out


def run_one(path: Path, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(path)], cwd=HERE.parent, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as err:
        rc = "timeout"
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        stderr = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
    secs = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    summary = lines[-1].strip() if lines else (stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"script": path.name, "rc": rc, "seconds": round(secs, 1), "summary": summary, "stdout": stdout,
            "stderr_tail": "\n".join(stderr.strip().splitlines()[-5:])}


def render(results: list[dict]) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# Benchmark report", "", f"- date: {when}", f"- machine: {machine()}", "",
           "| script | status | seconds | summary |", "|---|---|---|---|"]
    for r in results:
        status = "ok" if r["rc"] == 0 else f"failed ({r['rc']})"
        out.append(f"| `{r['script']}` | {status} | {r['seconds']} | {r['summary'].replace('|', '/')[:160]} |")
    for r in results:
        out += ["", f"## {r['script']}", ""]
        body = r["stdout"].rstrip() or "(no output)"
        # tables stay tables; anything else is shown as printed
        if body.lstrip().startswith("|") or body.lstrip().startswith("#"):
            out.append(body.replace("\n# ", "\n### "))
        else:
            out += ["```", body, "```"]
        if r["rc"] != 0 and r["stderr_tail"]:
            out += ["", "stderr (last lines):", "```", r["stderr_tail"], "```"]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=900, help="seconds per script (default 900)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these scripts (names or stems)")
    ap.add_argument("--out", default=str(HERE / "REPORT.md"))
    a = ap.parse_args()
    results = []
    for path in scripts(a.only):
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        r = run_one(path, a.timeout)
        print(f"  {r['rc']} in {r['seconds']} s: {r['summary'][:120]}", file=sys.stderr, flush=True)
        results.append(r)
    Path(a.out).write_text(render(results), "utf-8")
    print(f"wrote {a.out}", file=sys.stderr)
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
