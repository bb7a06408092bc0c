"""How far the training augmentations move the teacher's own (centred) embedding of a crop.

    .venv/bin/python bench/experiments/teacher_augment.py DATA_DIR [--n 200] [--cache_dir cache/crops/teacher]

Distillation pulls the student's embedding of an *augmented* crop to the teacher's embedding of the
*clean* crop. Where an augmentation moves the teacher itself, that gap is a floor under the distill
loss that no student can pass, and a noisy target. For ``--n`` random crops of DATA_DIR this embeds
the clean crop and each augmented view with the teacher (re-framed onto its template, as training
targets are) and prints the cosine to the clean crop's embedding, raw and centred (minus the mean of
the training targets, as ``TEACHER_CENTER`` does), with the mean ``1 - cos`` the distill loss's first
term would have if the student copied the teacher exactly. Views: the mirror image, the geometric
jitter alone (shift, scale, rotation), the photometric jitter alone, and the full ``data.augment``.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from facecore.core.paths import PROJECT_ROOT


def views(crops: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """uint8 augmented copies of ``crops`` under each view (training's ``augment``, one draw each)."""
    from facecore.training.data import augment, augmentation, to_tensor

    x = to_tensor(crops, crops.shape[1])
    aug = lambda kw: augment(x, torch.Generator().manual_seed(seed), **kw)  # noqa: E731
    ys = {"mirror": torch.flip(x, dims=[3]),  # augment mirrors half a batch: mirror all of it
          "geometric": aug({"flip": False, "jitter": 0}),
          "photometric": aug(augmentation("photometric")),
          "full augment": aug(augmentation("full"))}
    return {name: ((y.permute(0, 2, 3, 1).float().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            for name, y in ys.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", help="training crops (aligned 112 px), any layout")
    p.add_argument("--n", type=int, default=200, help="random crops to embed in each view")
    p.add_argument("--cache_dir", default="cache/crops/teacher", help="the training run's teacher cache (for the mean)")
    p.add_argument("--sample", type=int, default=20000, help="training crops whose cached targets give the mean")
    a = p.parse_args()

    from facecore.training.data import FaceSet
    from facecore.training.distill import center_targets, scan_unlabelled, teacher_targets
    from facecore.evaluation.embed import aligned_input
    from facecore.core.files import load_rgb
    from facecore.training.teachers import create_teacher

    teacher = create_teacher("dlib")
    fs = scan_unlabelled(a.data_dir)
    rows = sorted(np.random.default_rng(0).permutation(len(fs.paths))[:a.sample or None])
    sub = FaceSet(fs.root, [fs.paths[i] for i in rows], fs.labels[rows], [])
    mean = center_targets(teacher_targets(sub, teacher, PROJECT_ROOT / a.cache_dir, progress=False))[1]
    pick = np.random.default_rng(1).permutation(len(fs.paths))[: a.n]
    crops = np.stack([load_rgb(fs.root / fs.paths[i]).rgb for i in pick])

    def embed(c: np.ndarray) -> np.ndarray:
        return teacher.embed(np.stack([aligned_input(teacher, x) for x in c]))

    def centred(e: np.ndarray) -> np.ndarray:
        return (e - mean) / np.linalg.norm(e - mean, axis=1, keepdims=True)

    clean = embed(crops)
    print(f"{a.n} crops of {a.data_dir}; mean of {len(rows)} training targets (norm {np.linalg.norm(mean):.3f})")
    print(f"{'view':<14} {'raw cos':>16} {'centred cos':>16} {'floor of 1 - cos':>17}")
    for name, v in views(crops).items():
        e = embed(v)
        raw, cen = (e * clean).sum(1), (centred(e) * centred(clean)).sum(1)
        print(f"{name:<14} {raw.mean():>9.3f} +- {raw.std():.3f} {cen.mean():>9.3f} +- {cen.std():.3f} {1 - cen.mean():>17.3f}")


if __name__ == "__main__":
    main()
