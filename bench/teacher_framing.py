"""The dlib teacher's LFW accuracy with its chip framed two ways, side by side in one run.

    .venv/bin/python bench/teacher_framing.py [--no-flip]

``ours``: the 150x150 chip warped from our 5 MTCNN landmarks onto dlib's chip template
(``facecore.teachers.DLIB_TEMPLATE_150``); ``dlib``: dlib's own 5-point model placed inside our MTCNN
box, then ``get_face_chip``. Both start from the LFW alignment stage's manifest (box and landmarks
of each photo, ``cache/aligned/lfw-112``), write their crops once under ``cache/aligned/`` and run
the ``lfw`` protocol (10 folds of pairs.txt) on them, then the same on our 112x112 ArcFace crops
re-framed onto dlib's template (what distillation trains with). Printed: accuracy, its fold spread,
and network passes per second (mirror images count; meaningless where the embeddings were cached).
"""
from __future__ import annotations

import argparse
import time

from facecore.paths import PROJECT_ROOT, data_root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-flip", action="store_true", help="embed without the mirror image")
    p.add_argument("--framings", default="ours,dlib")
    args = p.parse_args()

    from facecore.protocols import evaluate
    from facecore.teachers import create_teacher, teacher_crops

    lfw_src = data_root() / "lfw" / "lfw-deepfunneled"
    manifest = PROJECT_ROOT / "cache" / "aligned" / "lfw-112"
    print("| framing | LFW accuracy (%) | faces/s |\n|---|---:|---:|")
    for framing in args.framings.split(","):
        t = create_teacher("dlib", framing=framing)
        crops = teacher_crops(lfw_src, manifest, t, PROJECT_ROOT / "cache" / "aligned" / f"lfw-{t.cache_key}")
        start = time.perf_counter()
        r = evaluate("lfw", t, aligned_dir=crops, flip=not args.no_flip, progress=True,
                     cache_dir=PROJECT_ROOT / "cache" / "embeddings")
        n = sum(1 for _ in crops.rglob("*.jpg"))
        rate = n * (1 if args.no_flip else 2) / (time.perf_counter() - start)  # cached embeddings make it look faster
        print(f"| {framing} (from the photos) | {100 * r['lfw_acc']:.2f} +- {100 * r['lfw_std']:.2f} | {rate:.1f} |",
              flush=True)
    t = create_teacher("dlib", framing="ours")
    r = evaluate("lfw", t, aligned_dir=manifest, flip=not args.no_flip, progress=True,
                 cache_dir=PROJECT_ROOT / "cache" / "embeddings")
    print(f"| ours, re-framed from our 112 px crops | {100 * r['lfw_acc']:.2f} +- {100 * r['lfw_std']:.2f} | - |")


if __name__ == "__main__":
    main()
