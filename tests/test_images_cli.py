"""``chartwise image classify|index|search`` with a tiny SigLIP, and one-line errors for missing weights."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _tiny_siglip import build_tiny_siglip
from conftest import REPO, SHARED_DATA

IMAGES = SHARED_DATA / "images"
CXR = IMAGES / "nih-cxr14" / "00000001_000.png"
RG1 = IMAGES / "pydicom-data-wg04" / "RG1_UNCR.dcm"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not IMAGES.is_dir():
        pytest.skip(f"shared images not found at {IMAGES}")
    return str(build_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip-cli")))


def _main(argv, capsys):
    from chartwise.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_classify_json_contract(tiny, capsys):
    rc, out, err = _main(["image", "classify", str(RG1), "--model", tiny, "--json", "--labels", "pleural effusion",
                          "cardiomegaly"], capsys)
    assert rc == 0, err
    data = json.loads(out)
    assert data["image"] == "file:RG1_UNCR.dcm" and data["model"] == tiny
    assert set(data["scores"]) == {"pleural effusion", "cardiomegaly"}
    assert all(0 <= v <= 1 for v in data["scores"].values())
    rc, out, _ = _main(["image", "classify", str(CXR), "--model", tiny], capsys)
    assert rc == 0 and "file:00000001_000.png" in out and "not diagnoses" in out


def test_index_then_search(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CHARTWISE_SIGLIP_MODEL", tiny)
    data = ["--data-dir", str(tmp_path / "d")]
    rc, out, err = _main(["image", "index", str(IMAGES), "--json", *data], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["added"] == report["images"] >= 8 and any("SR" in f for f in report["failed"])
    rc, out, _ = _main(["image", "search", str(IMAGES), "frontal chest film with effusion", "--json", "--limit", "3", *data], capsys)
    res = json.loads(out)
    assert rc == 0 and res["mode"] == "text" and len(res["results"]) == 3
    assert all(r["citation"].startswith("file:") for r in res["results"])
    rc, out, _ = _main(["image", "search", str(IMAGES), str(IMAGES / "derived-png" / "RG1_UNCR.png"), *data], capsys)
    assert rc == 0 and "file:pydicom-data-wg04/RG1_UNCR.dcm" in out.splitlines()[0]


def test_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("CHARTWISE_SIGLIP_MODEL", raising=False)
    rc, out, err = _main(["image", "classify", str(CXR)], capsys)
    assert rc != 0 and err.count("\n") == 1 and "google/medsiglip-448" in err and "CHARTWISE_SIGLIP_MODEL" in err
    rc, _, err = _main(["image", "classify", str(tmp_path / "none.png"), "--model", str(tmp_path)], capsys)
    assert rc != 0 and err.count("\n") == 1 and "not found" in err
    rc, _, err = _main(["image", "index", str(CXR), "--model", str(tmp_path / "missing")], capsys)
    assert rc != 0 and err.count("\n") == 1 and "does not exist" in err


def test_missing_weights_subprocess_no_traceback(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "chartwise.cli", "image", "classify", str(CXR), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "medsiglip" in proc.stderr
