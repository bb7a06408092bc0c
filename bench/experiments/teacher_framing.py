"""The dlib teacher's LFW accuracy with its chip framed three ways, side by side in one run.

    .venv/bin/python bench/experiments/teacher_framing.py [--folds 10] [--flip]

- ``ours``: the 150x150 chip warped from our 5 MTCNN landmarks onto dlib's chip template
  (``facecore.training.teachers.DLIB_TEMPLATE_150``), cut from the photo;
- ``dlib``: dlib's own 5-point model placed inside our MTCNN box, then ``get_face_chip``;
- ``re-framed``: our 112x112 ArcFace crop re-framed onto dlib's template (what distillation trains with:
  the corners outside the 112 crop are black).

All start from the LFW alignment stage's manifest (box and landmarks of each photo,
``cache/aligned/lfw-112``). ``--folds N`` measures on the first N folds of pairs.txt (600 pairs each)
to save time; the teacher runs at about 13 faces/s on one core. Printed: accuracy over those folds,
its fold spread, and faces per second.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facecore.core.paths import PROJECT_ROOT, data_root


def chips(variant: str, teacher, files: list[str], rows: list[int], manifest_dir: Path, m, src: Path) -> np.ndarray:
    """The teacher's input for each of ``files[rows]`` under ``variant``; ``m``: the manifest indexed by output."""
    from facecore.evaluation.embed import aligned_input
    from facecore.core.files import load_rgb
    from facecore.detection.folder import landmarks_of

    out = []
    for i in rows:
        rel = str(Path(files[i]).relative_to(manifest_dir))
        if variant == "re-framed":
            out.append(aligned_input(teacher, load_rgb(files[i], max_side=None).rgb))
            continue
        r = m.loc[[rel]]
        img = load_rgb(src / r.path.iloc[0], max_side=None).rgb
        out.append(teacher.align(img, r[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)[0], landmarks_of(r.reset_index())[0]))
    return np.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=10, help="use the first N (2..10) of the 10 folds")
    p.add_argument("--flip", action="store_true", help="average each face's and its mirror's embedding")
    args = p.parse_args()
    if not 2 <= args.folds <= 10:
        p.error(f"--folds must be 2..10 (the threshold of each fold is chosen on the others), got {args.folds}")

    from facecore.detection.folder import read_manifest
    from facecore.evaluation.metrics import lfw_accuracy
    from facecore.training.teachers import create_teacher
    from facecore.evaluation.lfw import lfw_protocol

    manifest = PROJECT_ROOT / "cache" / "aligned" / "lfw-112"
    src = data_root() / "lfw" / "lfw-deepfunneled"
    files, (i1, i2, issame, folds) = lfw_protocol(str(manifest), str(data_root() / "lfw" / "pairs.txt"))
    sel = folds < args.folds
    rows = sorted(set(i1[sel]) | set(i2[sel]))
    m = read_manifest(manifest).set_index("output")
    print(f"{int(sel.sum())} pairs ({args.folds} folds), {len(rows)} photos, flip={args.flip}")
    print("| framing | LFW accuracy (%) | fold spread | faces/s |\n|---|---:|---:|---:|")
    for variant, framing in (("ours", "ours"), ("dlib", "dlib"), ("re-framed", "ours")):
        t = create_teacher("dlib", framing=framing)
        x = chips(variant, t, files, rows, manifest, m, src)
        start = time.perf_counter()
        e = np.full((len(files), 128), np.nan, np.float32)
        e[rows] = t.embed(x, flip=args.flip)
        rate = len(rows) / (time.perf_counter() - start)
        r = lfw_accuracy(np.sum(e[i1[sel]] * e[i2[sel]], 1), issame[sel], folds[sel])
        print(f"| {variant} | {100 * r['mean']:.2f} | {100 * r['std']:.2f} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
