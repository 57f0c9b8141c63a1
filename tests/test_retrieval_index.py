"""Index behaviour: no re-embedding of an unchanged patient, Chroma server parity, units, CLI."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from _retrieval import NOTES, SYNTHEA, records


def test_reindex_unchanged_patient_embeds_nothing(tmp_path):
    from chartwise.tools import IndexSettings, PatientIndex, get_store
    from chartwise.tools.embedding import SentenceTransformerEmbedding

    store = get_store(IndexSettings(path=tmp_path / "idx"))
    p = records(str(NOTES)).patients()[0]
    first = PatientIndex(p, store).build()
    assert first.embedded > 0
    before = SentenceTransformerEmbedding.total_texts
    again = PatientIndex(p, store).build()
    assert again.embedded == 0
    assert SentenceTransformerEmbedding.total_texts == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chroma_server_matches_embedded(tmp_path):
    from chartwise.tools import IndexSettings, PatientIndex, build_evidence, get_store
    from chartwise.tools import index as index_mod

    chroma = Path(sys.executable).with_name("chroma")
    port = _free_port()
    proc = subprocess.Popen([str(chroma), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "srv")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        recs = records(str(SYNTHEA))
        p = recs.patients()[5]
        questions = ["latest potassium", "how many A1c results in 2019", "BP on 2015-06-01", "last flu shot"]
        results = {}
        for name, settings in (("embedded", IndexSettings(path=tmp_path / "emb")),
                               ("server", IndexSettings(host="127.0.0.1", port=port))):
            index_mod.configure(settings)
            idx = index_mod.patient_index(p)
            hits = [h.concept.key for h in idx.search_concepts("kidney function", k=5)]
            packs = [[i.citation for i in build_evidence(q, p).items] for q in questions]
            results[name] = (hits, packs)
        assert results["embedded"] == results["server"]
    finally:
        index_mod.configure(None)
        proc.terminate()
        proc.wait(timeout=20)


def test_dates_in_common_formats():
    from chartwise.tools import analyze

    for text in ("3/5/2021", "2021-03-05", "March 5, 2021", "5 Mar 2021", "Mar 5 2021", "5th of March 2021"):
        a = analyze(f"potassium on {text}", date(2023, 1, 1))
        assert a.at_date == date(2021, 3, 5), text
        assert "at_date" in a.types
    a = analyze("A1c in the last 6 months", date(2023, 1, 1))
    assert a.date_from == date(2022, 7, 1) and a.date_to == date(2023, 1, 1)
    assert analyze("how many BUN in 2022").types[0] == "count"
    assert analyze("when was diabetes first diagnosed").types[0] == "first"
    assert "abnormal" in analyze("most recent abnormal creatinine").types


def test_vocabulary_maps_clinician_words():
    from chartwise.tools.vocabulary import groups_in_text

    def first(q):
        return groups_in_text(q)[0][0].names[0]

    assert first("latest BUN") == "urea nitrogen"
    assert first("bicarb?") == "carbon dioxide"
    assert first("sugar test") == "hemoglobin a1c"
    assert first("Lipitor") == "atorvastatin"
    assert first("latest hemoglobin a1c") == "hemoglobin a1c"


def test_chunks_carry_offsets():
    from chartwise.tools.index import chunk_note

    p = records(str(NOTES)).patients()[0]
    note = next(f for f in p.facts if f.text)
    chunks = chunk_note(note)
    assert chunks and all(note.text[c.start:c.end] == c.text for c in chunks)
    assert all(c.citation.startswith("DocumentReference/") for c in chunks)


def test_tools_have_schemas_and_literature(tmp_path):
    from chartwise.tools import IndexSettings, SearchLiteratureArgs, configure, search_literature, tool_specs

    specs = {s["name"]: s for s in tool_specs()}
    assert {"manifest", "search_facts", "latest", "series", "active_medications", "problem_list", "get_resource",
            "search_notes", "search_literature"} <= set(specs)
    assert "concept" in specs["latest"]["parameters"]["properties"]
    configure(IndexSettings(path=tmp_path / "idx"))
    try:
        res = search_literature(SearchLiteratureArgs(query="mammography screening telephone counseling"))
        assert res.items and all(i.citation.startswith("PMID:") for i in res.items)
        corpus = tmp_path / "c.jsonl"
        corpus.write_text(json.dumps({"pmid": "1", "title": "Statins and LDL", "abstract": "Atorvastatin lowers LDL."}) + "\n")
        res = search_literature(SearchLiteratureArgs(query="statin", limit=1), corpus=str(corpus))
        assert res.items[0].citation == "PMID:1"
    finally:
        configure(None)


def test_cli_evidence_json_and_batch(tmp_path):
    env_dir = tmp_path / "idx"
    qfile = tmp_path / "q.jsonl"
    bundle = sorted(SYNTHEA.glob("*.json"))[0]
    qfile.write_text(json.dumps({"id": "a", "question": "latest BP", "file": str(bundle)}) + "\n" +
                     json.dumps({"id": "b", "question": "any allergies?", "file": str(bundle)}) + "\n")
    cmd = [sys.executable, "-m", "chartwise.cli", "evidence", "--questions", str(qfile), "--json", "--index-dir", str(env_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["id"] for x in lines] == ["a", "b"]
    for obj in lines:
        assert set(obj) == {"id", "question", "items", "tokens"}
        assert obj["tokens"] == sum(i["tokens"] for i in obj["items"])
        assert all(set(i) == {"citation", "text", "tokens"} for i in obj["items"])
    bad = subprocess.run([sys.executable, "-m", "chartwise.cli", "evidence", str(bundle), "--budget", "0", "q"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
