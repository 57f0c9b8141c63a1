"""Retrieval benchmark: this pipeline vs naive dense top-k vs the whole record, on both development sets.

    .venv/bin/python bench/retrieval.py [--k 10] [--big]

Prints one table: evidence recall, mean/median pack tokens, index time per patient, query latency
p50/p95.  Tokens are the documented estimate (chars / 3.5, chartwise.tools.tokens).  ``--big`` adds
the largest clinosim chart set (population 2000).  The latency target's chart is the four large charts
merged into one patient (about 10,000 resources; ``bench/_data.py:merged_chart``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import large_charts, merged_chart, shared_data  # noqa: E402
from _questions import build_set, recall  # noqa: E402

from chartwise.fhir.store import load  # noqa: E402
from chartwise.tools import IndexSettings, build_evidence, configure, get_store  # noqa: E402
from chartwise.tools.index import PatientIndex  # noqa: E402
from chartwise.tools.tokens import estimate, item_tokens  # noqa: E402


def naive(store, patient, k):
    """One rendering per resource, all embedded, dense top-k."""
    t = time.perf_counter()
    facts = patient.facts
    texts = [(f.line + (" " + f.text[:1000] if f.text else "")) for f in facts]
    col = store.client.get_or_create_collection(f"naive-{abs(hash(patient.patient_key)) % 10**9}", embedding_function=None,
                                                metadata={"hnsw:space": "cosine"})
    vecs = store.embedder(texts)
    for i in range(0, len(texts), 1000):
        col.add(ids=[f.key for f in facts[i:i + 1000]], embeddings=vecs[i:i + 1000], documents=texts[i:i + 1000])
    elapsed = time.perf_counter() - t
    by_key = {f.key: tx for f, tx in zip(facts, texts)}

    def query(q):
        res = col.query(query_embeddings=[store.embed_query(q)], n_results=min(k, len(facts)))
        keys = res["ids"][0]
        return keys, sum(item_tokens(x, by_key[x]) for x in keys)
    return elapsed, query


def run(name, sets, k, out_rows):
    # each set starts from an empty store: vectors shared between the patients of one set are reused
    # (as in a deployment indexing a population), none carried over from the set before
    configure(IndexSettings(path=Path(tempfile.mkdtemp(prefix="chartwise-bench-"))))
    store = get_store()
    store.embedder(["model warm-up, not timed"])  # the first call loads the model: neither method pays it
    rec, tok, lat, nrec, ntok, t_idx, t_naive, whole, raw, over = [], [], [], [], [], [], [], [], [], 0
    for recs, qs in sets:
        by_patient = {}
        for q in qs:
            by_patient.setdefault(q.patient, []).append(q)
        for pid, pqs in by_patient.items():
            p = recs.patient(pid)
            p.facts  # the ingest's output, read by both methods: built before either clock starts
            t = time.perf_counter()
            from chartwise.tools import index as im
            idx = PatientIndex(p, store).build()
            t_idx.append(time.perf_counter() - t)
            im._INDEXES[id(p)] = (p, store.settings.model_dump_json(), idx)
            tn, nq = naive(store, p, k)
            t_naive.append(tn)
            whole.append(sum(estimate(f.line) for f in p.facts))
            rt = sum(estimate(json.dumps(r)) for r in p.resources())
            raw.append(rt)
            over += rt > 128_000
            for q in pqs:
                t = time.perf_counter()
                pack = build_evidence(q.question, p)
                lat.append((time.perf_counter() - t) * 1000)
                rec.append(recall(q, [i.citation for i in pack.items]))
                tok.append(pack.tokens)
                keys, ntokens = nq(q.question)
                nrec.append(recall(q, keys))
                ntok.append(ntokens)
    q95 = lambda xs: sorted(xs)[int(0.95 * (len(xs) - 1))]  # noqa: E731
    out_rows.append((name, len(rec), "this pipeline", sum(rec) / len(rec), statistics.mean(tok), statistics.median(tok),
                     statistics.mean(t_idx), statistics.median(lat), q95(lat)))
    out_rows.append((name, len(rec), f"naive dense top-{k}", sum(nrec) / len(nrec), statistics.mean(ntok),
                     statistics.median(ntok), statistics.mean(t_naive), None, None))
    out_rows.append((name, len(rec), "whole record (lines)", 1.0, statistics.mean(whole), statistics.median(whole), None, None, None))
    out_rows.append((name, len(rec), f"whole record (raw JSON; {over} > 128K)", 1.0, statistics.mean(raw), statistics.median(raw),
                     None, None, None))
    fmt = lambda v, d=1: "" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in out_rows[-4:]:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {fmt(r[4], 0)} | {fmt(r[5], 0)} | {fmt(r[6], 2)} | {fmt(r[7])} | {fmt(r[8])} |",
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--big", action="store_true")
    args = ap.parse_args()
    data = shared_data() / "fhir"
    syn, notes = load(data / "synthea-r4" / "bundles"), load(data / "bulk-notes" / "ndjson")
    rows = []
    print("| set | questions | method | recall | mean tokens | median tokens | index s/patient | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    run("synthea+notes", [(syn, build_set(syn, seed=1, limit_patients=12, label="s")),
                          (notes, build_set(notes, seed=2, limit_patients=6, per_kind=1, label="n"))], args.k, rows)
    big = load(large_charts())
    run("clinosim large", [(big, build_set(big, seed=3, per_kind=8, label="L"))], args.k, rows)
    merged = load(merged_chart())
    n = len(merged.patient().keys)
    run(f"one {n:,}-resource chart", [(merged, build_set(merged, seed=5, per_kind=6, label="M"))], args.k, rows)
    if args.big:
        huge = load(large_charts(population=2000, seed=7, top=3))
        run("clinosim p2000 top3", [(huge, build_set(huge, seed=4, per_kind=8, label="H"))], args.k, rows)
    print()
    for i in range(0, len(rows), 4):
        ours, naive_row = rows[i], rows[i + 1]
        speed = naive_row[6] / ours[6]
        print(f"{ours[0]}: recall {ours[3]:.3f} at median {ours[5]:.0f} tokens (naive {naive_row[3]:.3f}); index "
              f"{ours[6]:.2f} s vs naive {naive_row[6]:.2f} s per patient = {speed:.1f}x faster (target >= 10x: "
              f"{'MET' if speed >= 10 else 'NOT MET'}); query p50 {ours[7]:.1f} ms")
    last = rows[8]
    print(f"p50 query latency on the {n:,}-resource chart: {last[7]:.1f} ms (target <= 50 ms: "
          f"{'MET' if last[7] <= 50 else 'NOT MET'})")


if __name__ == "__main__":
    main()
