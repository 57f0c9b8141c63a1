"""MedSigLIP image tools on a tiny random SigLIP loaded through the MedSigLIP path: zero-shot scores,
DICOM handling, the image index (text and image queries), FHIR attachments and the agent tool specs."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from _tiny_siglip import build_tiny_siglip
from conftest import SHARED_DATA

IMAGES = SHARED_DATA / "images"
CXR = IMAGES / "nih-cxr14" / "00000001_000.png"
RG1 = IMAGES / "pydicom-data-wg04" / "RG1_UNCR.dcm"
RG1_PNG = IMAGES / "derived-png" / "RG1_UNCR.png"
CT = IMAGES / "pydicom-testfiles" / "CT_small.dcm"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"shared images not found at {IMAGES}")
    return build_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    from chartwise.tools.siglip import SiglipSettings, load_siglip

    return load_siglip(SiglipSettings(model=str(tiny_dir), device="cpu"))


def test_loads_through_medsiglip_path(tiny_dir, encoder, monkeypatch):
    import torch
    from transformers import SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from chartwise.tools.siglip import SiglipSettings, load_siglip

    assert isinstance(encoder.model, SiglipModel)
    assert isinstance(encoder.processor.image_processor, SiglipImageProcessorPil)  # no torchvision
    assert next(encoder.model.parameters()).dtype == torch.float32
    assert encoder.model_id == str(tiny_dir)
    monkeypatch.setenv("CHARTWISE_SIGLIP_MODEL", str(tiny_dir))
    assert load_siglip(SiglipSettings(device="cpu")) is encoder  # env setting, cached per process


def test_missing_weights_are_one_line(monkeypatch, tmp_path):
    from chartwise.fhir.errors import ConfigError
    from chartwise.tools.siglip import SiglipSettings, load_siglip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("CHARTWISE_SIGLIP_MODEL", raising=False)
    for model, expect in [("", "google/medsiglip-448"), (str(tmp_path / "nope"), "does not exist"),
                          (str(tmp_path), "no config.json"), ("not-an-id", "neither a hub id")]:
        with pytest.raises(ConfigError) as err:
            load_siglip(SiglipSettings(model=model))
        assert expect in str(err.value) and "\n" not in str(err.value)


def test_classify_png_and_dicom_scores_are_independent_sigmoids(encoder):
    from chartwise.tools.images import DEFAULT_LABELS, NOTICE, classify_image

    for path in (CXR, RG1, CT):
        res = classify_image(path, encoder=encoder)
        assert res.citation == f"file:{path.name}"
        assert res.modality == "chest_xray" and res.labels == DEFAULT_LABELS["chest_xray"]
        assert set(res.scores) == set(res.labels) and len(res.ranked) == len(res.labels)
        assert all(0.0 <= s <= 1.0 for s in res.scores.values())
        assert abs(sum(res.scores.values()) - 1.0) > 1e-3 or len(res.labels) == 1  # not a softmax
        assert res.notice == NOTICE and "not a diagnosis" in res.text
        assert [r.score for r in res.ranked] == sorted(res.scores.values(), reverse=True)
    # each label's score does not depend on the other labels
    a = classify_image(CXR, ["pleural effusion", "cardiomegaly", "pneumothorax"], "cxr", encoder=encoder)
    b = classify_image(CXR, ["cardiomegaly"], "chest_xray", encoder=encoder)
    assert a.scores["cardiomegaly"] == pytest.approx(b.scores["cardiomegaly"], abs=1e-5)
    c = classify_image(CXR, ["a chest X-ray showing cardiomegaly"], encoder=encoder)  # a sentence is used as is
    assert c.ranked[0].prompt == "a chest X-ray showing cardiomegaly"
    assert c.scores["a chest X-ray showing cardiomegaly"] == pytest.approx(b.scores["cardiomegaly"], abs=1e-5)
    derm = classify_image(CXR, modality="dermatology", encoder=encoder)
    assert derm.labels == DEFAULT_LABELS["dermatology"] and derm.ranked[0].prompt.startswith("a dermatology photograph")
    contract = a.contract()
    assert contract["image"] == "file:00000001_000.png" and contract["model"] == encoder.model_id
    assert set(contract["scores"]) == {"pleural effusion", "cardiomegaly", "pneumothorax"}


def test_embeddings_shape_and_probability_range(encoder):
    from chartwise.tools.images import file_entries

    imgs = [file_entries(p)[0].load() for p in (CXR, RG1, CT)]
    emb = encoder.embed_images(imgs)
    assert emb.shape == (3, encoder.dim) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    txt = encoder.embed_texts(["pleural effusion", "a chest X-ray showing cardiomegaly"])
    probs = encoder.probabilities(emb, txt)
    assert probs.shape == (3, 2) and ((probs >= 0) & (probs <= 1)).all()


def test_dicom_monochrome1_is_inverted():
    import pydicom

    from chartwise.tools.images import file_entries

    assert pydicom.dcmread(RG1, stop_before_pixels=True).PhotometricInterpretation == "MONOCHROME1"
    entry = file_entries(RG1)[0]
    assert entry.modality == "CR" and entry.body_part == "CHEST" and entry.label_modality() == "chest_xray"
    img = np.asarray(entry.load().convert("L").resize((128, 128)), dtype=np.float64)
    ref = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(RG1_PNG).convert("L").resize((128, 128)),
                     dtype=np.float64)
    # the preview was rendered with MONOCHROME1 inverted: the decoded DICOM matches it, not its negative
    assert np.abs(img - ref).mean() < 25 < np.abs((255 - img) - ref).mean()
    # air (lung fields, outside the body) is dark: the image border is darker than the centre on average
    assert img[:, :8].mean() < img[40:90, 40:90].mean() or img.mean() < 160


def _multiframe(tmp_path: Path, n: int = 3) -> Path:
    import pydicom

    ds = pydicom.dcmread(CT)
    frames = np.stack([ds.pixel_array + i * 50 for i in range(n)]).astype(ds.pixel_array.dtype)
    ds.set_pixel_data(frames, "MONOCHROME2", int(ds.BitsStored))
    out = tmp_path / "multi.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def test_multiframe_policies(tmp_path, encoder):
    from chartwise.tools.images import classify_image, file_entries

    path = _multiframe(tmp_path, 5)
    middle = file_entries(path)
    assert [e.key for e in middle] == ["file:multi.dcm"] and middle[0].frames == 5
    every = file_entries(path, frames="all")
    assert [e.key for e in every] == [f"file:multi.dcm#frame={i}" for i in range(5)]
    assert len(file_entries(path, frames="all", max_frames=2)) == 2
    assert every[2].load().size == middle[0].load().size
    res = classify_image(every[4], ["mass"], encoder=encoder)
    assert res.citation == "file:multi.dcm#frame=4" and res.frame == 4


def test_index_search_and_similar_return_the_right_keys(tmp_path, encoder):
    from chartwise.tools.image_index import ImageIndex, search_images, similar_images
    from chartwise.tools.images import entries_for_path

    skipped: list[str] = []
    entries, scopes = entries_for_path(IMAGES, skipped=skipped)
    keys = {e.key for e in entries}
    assert {"file:nih-cxr14/00000001_000.png", "file:pydicom-data-wg04/RG1_UNCR.dcm",
            "file:pydicom-testfiles/CT_small.dcm", "file:derived-png/RG1_UNCR.png"} <= keys
    assert any("SR object without pixel data" in s for s in skipped)  # SR files are skipped, reported
    assert scopes == [f"path:{IMAGES.resolve()}"]
    index = ImageIndex(encoder, path=tmp_path / "data")
    report = index.add(entries)
    assert report.added == len(entries) == report.images and not report.failed
    again = index.add(entries)
    assert again.added == 0 and again.unchanged == len(entries)

    hits = index.similar(RG1_PNG, scopes, limit=3)
    # the DICOM the preview was rendered from is its nearest neighbour; the query itself is excluded
    assert hits[0].citation == "file:pydicom-data-wg04/RG1_UNCR.dcm" and hits[0].score > 0.9
    assert "file:derived-png/RG1_UNCR.png" not in {h.citation for h in hits}
    text_hits = search_images("frontal chest film with effusion", scopes, index=index, limit=4)
    assert len(text_hits) == 4 and {h.citation for h in text_hits} <= keys
    assert all(-1.0 <= h.score <= 1.0 and 0.0 <= h.probability <= 1.0 for h in text_hits)
    assert [h.score for h in text_hits] == sorted((h.score for h in text_hits), reverse=True)
    assert similar_images(CXR, ["path:/elsewhere"], index=index) == []  # scopes filter


@pytest.fixture(scope="module")
def patient_bundle(tmp_path_factory) -> Path:
    if not IMAGES.is_dir():
        pytest.skip("shared images missing")
    d = tmp_path_factory.mktemp("fhir-images")
    (d / "films").mkdir()
    (d / "films" / "rg1.dcm").write_bytes(RG1.read_bytes())
    png = base64.b64encode(CXR.read_bytes()).decode()
    entries = [
        {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-01-01"},
        {"resourceType": "Media", "id": "m1", "status": "completed", "subject": {"reference": "Patient/p1"},
         "createdDateTime": "2019-03-02", "modality": {"text": "chest x-ray"},
         "content": {"contentType": "image/png", "data": png, "title": "PA chest"}},
        {"resourceType": "DocumentReference", "id": "d1", "status": "current", "subject": {"reference": "Patient/p1"},
         "date": "2020-05-01T10:00:00Z",
         "content": [{"attachment": {"contentType": "application/dicom", "url": "films/rg1.dcm"}},
                     {"attachment": {"contentType": "text/plain", "data": base64.b64encode(b"note").decode()}}]},
        {"resourceType": "DiagnosticReport", "id": "r1", "status": "final", "code": {"text": "CT head"},
         "subject": {"reference": "Patient/p1"}, "issued": "2021-01-01T00:00:00Z",
         "presentedForm": [{"contentType": "image/png", "data": base64.b64encode(RG1_PNG.read_bytes()).decode()}]},
    ]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in entries]}
    (d / "bundle.json").write_text(json.dumps(bundle))
    return d


def test_fhir_attachments_are_cited_by_their_resources(patient_bundle, tmp_path, encoder):
    from chartwise.fhir.store import load
    from chartwise.tools.image_index import ImageIndex
    from chartwise.tools.images import entries_for_path, patient_entries

    patient = load(patient_bundle / "bundle.json").patient()
    entries = patient_entries(patient)
    assert sorted(e.key for e in entries) == ["DiagnosticReport/r1", "DocumentReference/d1", "Media/m1"]
    by = {e.key: e for e in entries}
    assert by["Media/m1"].date == "2019-03-02" and by["DocumentReference/d1"].modality == "CR"
    # a folder holding the bundle and the file it points to: the file is cited by its resource
    found, scopes = entries_for_path(patient_bundle)
    assert sorted(e.key for e in found) == ["DiagnosticReport/r1", "DocumentReference/d1", "Media/m1"]
    assert scopes == ["Patient/p1"]
    index = ImageIndex(encoder, path=tmp_path / "data")
    index.add(found)
    hits = index.similar(by["DiagnosticReport/r1"], scopes, limit=2)
    assert hits[0].citation == "DocumentReference/d1" and hits[0].date == "1995-09-26"


def test_agent_tools_return_cited_evidence(patient_bundle, tmp_path, tiny_dir, monkeypatch):
    from chartwise.agent.evidence import as_items
    from chartwise.agent.models.toolcalls import ToolSpec
    from chartwise.fhir.errors import InputError
    from chartwise.fhir.store import load
    from chartwise.tools import image_tools as it

    monkeypatch.setenv("CHARTWISE_SIGLIP_MODEL", str(tiny_dir))
    monkeypatch.setenv("CHARTWISE_DATA_DIR", str(tmp_path / "data"))
    patient = load(patient_bundle / "bundle.json").patient()
    for name, (fn, args_model) in it.IMAGE_TOOLS.items():
        spec = ToolSpec.from_callable(fn, name=name)
        assert spec.args_model is args_model and spec.description and spec.schema()["properties"]
    out = it.classify_images(it.ClassifyImagesArgs(image="Media/m1", labels=["cardiomegaly", "pleural effusion"]), patient)
    items = as_items(out, source="classify_images")
    assert [i["key"] for i in items] == ["Media/m1"] and "not a diagnosis" in items[0]["text"]
    assert out.classifications[0].date == "2019-03-02"
    every = it.classify_images(it.ClassifyImagesArgs(), patient)
    assert {c.citation for c in every.classifications} == {"Media/m1", "DocumentReference/d1", "DiagnosticReport/r1"}
    found = it.search_images(it.SearchImagesArgs(query="frontal chest film with effusion", limit=2), patient)
    assert len(as_items(found)) == 2 and {i["citation"] for i in found.items} <= {"Media/m1", "DocumentReference/d1",
                                                                                   "DiagnosticReport/r1"}
    sim = it.similar_images(it.SimilarImagesArgs(image="DiagnosticReport/r1", limit=1), patient)
    assert sim.items[0]["citation"] == "DocumentReference/d1"
    with pytest.raises(InputError):
        it.classify_images(it.ClassifyImagesArgs(image="Media/missing"), patient)
