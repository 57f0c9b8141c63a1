"""Image tool benchmark: images/s embedded through the tool (decode + ImageIndex.add) vs calling the
SigLIP model directly on preprocessed tensors in the same run, and index/query time for one patient
with 200 images made by augmenting the shared ones (flips, crops, brightness).

    python bench/images.py [--model google/medsiglip-448 | /path] [--n 200] [--queries 20]

Without --model a tiny random SigLIP is built (timings of the pipeline overhead, not of MedSigLIP).
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "data" / "images"


def augment(n: int, out: Path, seed: int = 0) -> list[Path]:
    from PIL import Image, ImageEnhance, ImageOps

    sys.path.insert(0, str(REPO))
    from chartwise.tools.image_loading import load_image

    bases = [load_image(p, max_side=512) for p in sorted(IMAGES.rglob("*"))
             if p.suffix.lower() in (".png", ".dcm") and "SR" not in p.name and "reportsi" not in p.name]
    rnd = random.Random(seed)
    paths = []
    for i in range(n):
        img = bases[i % len(bases)]
        if rnd.random() < 0.5:
            img = ImageOps.mirror(img)
        w, h = img.size
        c = rnd.uniform(0.0, 0.15)
        img = img.crop((int(w * c), int(h * c), int(w * (1 - c)), int(h * (1 - c))))
        img = ImageEnhance.Brightness(img).enhance(rnd.uniform(0.7, 1.3))
        p = out / f"img_{i:03d}.png"
        img.save(p)
        paths.append(p)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    from chartwise.tools.image_index import ImageIndex
    from chartwise.tools.images import folder_entries
    from chartwise.tools.siglip import SiglipSettings, load_siglip

    tmp = Path(tempfile.mkdtemp(prefix="chartwise-bench-images-"))
    model = args.model
    if model is None:
        sys.path.insert(0, str(REPO / "tests"))
        from _tiny_siglip import build_tiny_siglip

        model = str(build_tiny_siglip(tmp / "tiny"))
    t0 = time.perf_counter()
    enc = load_siglip(SiglipSettings(model=model, device=args.device))
    load_s = time.perf_counter() - t0
    folder = tmp / "patient"
    folder.mkdir()
    augment(args.n, folder)
    entries = folder_entries(folder)
    for e in entries:
        e.scope = "Patient/bench"

    # direct: preprocessed tensors straight into get_image_features (images decoded beforehand)
    imgs = [e.load() for e in entries]
    inputs = enc.processor(images=imgs, return_tensors="pt")["pixel_values"]
    dtype = next(enc.model.parameters()).dtype
    with torch.inference_mode():
        enc.model.get_image_features(pixel_values=inputs[:2].to(enc.device, dtype=dtype))  # warm-up
        t0 = time.perf_counter()
        for s in range(0, len(imgs), enc.batch_size):
            enc.model.get_image_features(pixel_values=inputs[s:s + enc.batch_size].to(enc.device, dtype=dtype))
        if enc.device.startswith("cuda"):
            torch.cuda.synchronize()
        direct_s = time.perf_counter() - t0

    # tool: decode files, preprocess, embed, normalize (encoder.embed_images)
    t0 = time.perf_counter()
    enc.embed_images([e.load() for e in entries])
    tool_embed_s = time.perf_counter() - t0

    # index: decode + embed + chromadb upsert; then a re-index of unchanged images
    index = ImageIndex(enc, path=tmp / "data")
    t0 = time.perf_counter()
    report = index.add(entries)
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = index.add(entries)
    reindex_s = time.perf_counter() - t0

    texts = ["frontal chest film with effusion", "lateral view of the lower leg", "CT slice of the head",
             "chest x-ray with cardiomegaly", "a normal chest radiograph"]
    t0 = time.perf_counter()
    for i in range(args.queries):
        index.search_text(texts[i % len(texts)], ["Patient/bench"], 5)
    text_q_ms = (time.perf_counter() - t0) / args.queries * 1000
    t0 = time.perf_counter()
    for i in range(args.queries):
        index.similar(entries[i % len(entries)], ["Patient/bench"], 5)
    image_q_ms = (time.perf_counter() - t0) / args.queries * 1000

    n = len(entries)
    out = {
        "model": enc.model_id if args.model else "tiny random SigLIP (28 px, hidden 32)",
        "device": enc.device, "dtype": str(dtype).replace("torch.", ""), "images": n, "load_s": round(load_s, 2),
        "direct_images_per_s": round(n / direct_s, 1),
        "tool_embed_images_per_s": round(n / tool_embed_s, 1),
        "index_images_per_s": round(n / index_s, 1), "index_s": round(index_s, 2), "added": report.added,
        "reindex_unchanged_s": round(reindex_s, 3), "unchanged": again.unchanged,
        "text_query_ms": round(text_q_ms, 1), "image_query_ms": round(image_q_ms, 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<26}{v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
