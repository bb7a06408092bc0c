"""The teacher's LFW accuracy with raw and with centred embeddings, and how spread its embeddings are.

    .venv/bin/python bench/experiments/teacher_centering.py DATA_DIR [--cache_dir cache/crops/teacher] [--sample 20000]

Distillation centres the teacher's targets (``facecore.training.distill.center_targets``: minus their mean over
the training crops, re-normalised): dlib's unit descriptors share a large common part, and a student
copying the raw cosine structure collapses into a narrow cone. This prints what centring costs the
teacher itself on LFW (10 folds, flip embeddings of our aligned crops, the mean taken from DATA_DIR's
teacher targets) and the mean and spread of the cosine between random training faces, both ways.
Teacher embeddings come from the caches that training and the ``lfw`` protocol fill (computed if absent).
"""
from __future__ import annotations

import argparse

import numpy as np

from facecore.core.paths import PROJECT_ROOT, data_root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", help="the training crops whose teacher targets give the mean")
    p.add_argument("--cache_dir", default="cache/crops/teacher", help="the training run's teacher cache")
    p.add_argument("--sample", type=int, default=20000, help="random training crops for the mean (0: all)")
    a = p.parse_args()

    from facecore.training.data import FaceSet
    from facecore.training.distill import center_targets, scan_unlabelled, teacher_targets
    from facecore.evaluation.embed import embed_files
    from facecore.evaluation.metrics import lfw_accuracy
    from facecore.training.teachers import create_teacher
    from facecore.evaluation.lfw import lfw_protocol

    teacher = create_teacher("dlib")
    fs = scan_unlabelled(a.data_dir)
    rows = np.random.default_rng(0).permutation(len(fs.paths))[:a.sample or None]
    sub = FaceSet(fs.root, [fs.paths[i] for i in sorted(rows)], fs.labels[sorted(rows)], [])
    t = teacher_targets(sub, teacher, PROJECT_ROOT / a.cache_dir)
    c, mean = center_targets(t)
    iu = np.triu_indices(min(len(t), 3000), 1)
    for name, x in (("raw", t), ("centred", c)):
        s = (x[:3000] @ x[:3000].T)[iu]
        print(f"{name}: cosine between random training faces {s.mean():.3f} +- {s.std():.3f}")
    print(f"the mean's norm: {np.linalg.norm(mean):.3f} ({len(t)} training crops)")
    files, (i1, i2, issame, folds) = lfw_protocol(str(PROJECT_ROOT / "cache/aligned/lfw-112"),
                                                  str(data_root() / "lfw" / "pairs.txt"))
    e = embed_files(files, teacher, aligned=True, flip=True, cache_dir=PROJECT_ROOT / "cache/embeddings").embeddings
    ec = (e - mean) / np.linalg.norm(e - mean, axis=1, keepdims=True)
    for name, x in (("raw", e), ("centred", ec)):
        r = lfw_accuracy(np.sum(x[i1] * x[i2], 1), issame, folds)
        print(f"LFW, {name} teacher embeddings: {100 * r['mean']:.2f} +- {100 * r['std']:.2f} %")


if __name__ == "__main__":
    main()
