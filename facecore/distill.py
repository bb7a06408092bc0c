"""Distillation data: unlabelled faces beside the labelled ones, and a teacher's embedding of every crop.

The ``distill`` loss (``facecore.losses.DistillLoss``) takes ``(identity, teacher embedding)`` per
image; an unlabelled face has identity -1 and still teaches through its teacher embedding. Teacher
embeddings are computed once from the aligned training crops (``teacher.align`` re-frames each
112x112 ArcFace-template crop onto the teacher's own template) and cached by file content.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import FaceSet


@dataclass
class DistillData:
    """Teacher targets of the labelled training crops (rows of ``labelled``) and the unlabelled set."""

    labelled: np.ndarray  # (N_labelled, D) unit teacher embeddings, NaN where the teacher had no crop
    unlabelled: FaceSet  # labels all -1
    unlabelled_targets: np.ndarray  # (N_unlabelled, D)


def scan_unlabelled(root: str | os.PathLike, limit: int = 0) -> FaceSet:
    """Every image under ``root`` (any layout) as a set without identities (labels -1); ``limit``: the
    first N in sorted order (0: all)."""
    from .files import list_images

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"unlabelled faces: no folder {root} (align the unlabelled set first: README, 'Distillation')")
    paths = list_images(root)
    paths = paths[:limit] if limit else paths
    if not paths:
        raise ValueError(f"unlabelled faces: {root} holds no images")
    return FaceSet(root, paths, np.full(len(paths), -1, np.int64), [])


def teacher_targets(fs: FaceSet, teacher, cache_dir: str | os.PathLike | None, progress: bool = True,
                    flip: bool = False) -> np.ndarray:
    """(N, D) unit teacher embeddings of the aligned crops of ``fs`` (``flip``: averaged with the mirror's),
    cached by file content."""
    from .embed import embed_files

    if hasattr(teacher, "lookup"):  # a table of embeddings computed elsewhere (teachers.TableTeacher)
        return teacher.lookup(fs.root, fs.paths)
    e = embed_files([fs.root / p for p in fs.paths], teacher, aligned=True, flip=flip, cache_dir=cache_dir,
                    progress=progress)
    bad = [fs.paths[i] for i in np.nonzero(~e.ok)[0][:3]]
    if bad:
        raise ValueError(f"teacher {teacher.name}: {int((~e.ok).sum())} crops could not be embedded, e.g. {bad}; "
                         "re-run the alignment stage")
    return e.embeddings


def prepare(teacher_name: str, teacher_kwargs: dict, labelled: FaceSet, unlabelled_dir: str | None,
            unlabelled_limit: int, cache_dir: str | os.PathLike | None, progress: bool = True,
            flip: bool = False) -> DistillData:
    """The teacher's targets for ``labelled`` and for the unlabelled faces under ``unlabelled_dir``."""
    from .teachers import create_teacher

    teacher = create_teacher(teacher_name, **teacher_kwargs)
    unl = (scan_unlabelled(unlabelled_dir, unlabelled_limit) if unlabelled_dir
           else FaceSet(Path("."), [], np.zeros(0, np.int64), []))
    return DistillData(teacher_targets(labelled, teacher, cache_dir, progress, flip), unl,
                       teacher_targets(unl, teacher, cache_dir, progress, flip) if len(unl.paths)
                       else np.zeros((0, teacher.meta["embedding_dim"]), np.float32))


def center_targets(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(targets minus their mean, re-normalised; the mean). A teacher whose unit embeddings share a
    large common part (dlib's: mean cosine 0.83 between random faces of the 9,133-identity set) leaves
    the student a narrow cone to copy; centred, random faces sit at cosine 0 +- 0.18."""
    t = np.asarray(targets, np.float32)
    mean = np.nanmean(t, axis=0)
    c = t - mean
    return c / np.linalg.norm(c, axis=1, keepdims=True).clip(1e-12), mean


def attach(run, labelled: FaceSet, cache_dir: Path, progress: bool = True) -> None:
    """Make a training run (``facecore.train``) a distillation run: the teacher's targets for every crop,
    and the unlabelled faces appended to the crops and the training rows (identity -1)."""
    from .data import load_crops
    from .preprocessing import cache_crop_size

    cfg = run.cfg
    if getattr(run.loss_fn, "teacher_dim", None) is None:
        raise ValueError(f"teacher={cfg.teacher!r} needs loss='distill', got loss={cfg.loss!r}")
    dd = prepare(cfg.teacher, dict(cfg.teacher_kwargs), labelled, cfg.unlabelled_dir, cfg.unlabelled_limit,
                 cache_dir / "teacher", progress, cfg.teacher_flip)
    if dd.labelled.shape[1] != run.loss_fn.teacher_dim:
        raise ValueError(f"teacher {cfg.teacher!r} gives {dd.labelled.shape[1]}-d embeddings but the distill loss "
                         f"was built with teacher_dim={run.loss_fn.teacher_dim}")
    run.teacher = np.concatenate([dd.labelled, dd.unlabelled_targets]).astype(np.float32)
    if cfg.teacher_center:
        run.teacher, mean = center_targets(run.teacher)
        if progress:
            print(f"teacher targets centred (their mean's norm {np.linalg.norm(mean):.3f})")
    if len(dd.unlabelled.paths):
        extra = load_crops(dd.unlabelled, cache_crop_size(run.input_size), cache_dir, progress)
        start = len(run.crops)
        run.crops = np.concatenate([run.crops, extra])
        run.tr_rows = np.concatenate([run.tr_rows, np.arange(start, start + len(extra))])
        run.tr_labels = np.concatenate([run.tr_labels, dd.unlabelled.labels])


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.distill ROOT [--shard K/N] [--teacher dlib] [--flip] [--cache_dir D]``: fill the
    teacher cache for the crops under ROOT before training. dlib's CPU build uses one thread, so run one
    process per core, each with its own ``--shard`` (every N-th file from the K-th, 0-based)."""
    import argparse
    import sys

    from .paths import project_path
    from .teachers import create_teacher, teacher_names

    p = argparse.ArgumentParser(prog="python -m facecore.distill", description="teacher embeddings of aligned crops")
    p.add_argument("root", help="aligned crops (any layout), e.g. a training DATA_DIR or UNLABELLED_DIR")
    p.add_argument("--teacher", default="dlib", choices=teacher_names())
    p.add_argument("--framing", default="ours", help="dlib teacher: ours or dlib")
    p.add_argument("--onnx_path", default="", help="onnx teacher: the model file")
    p.add_argument("--flip", action="store_true", help="also the mirror's embedding (TEACHER_FLIP)")
    p.add_argument("--shard", default="0/1", help="K/N: this process embeds every N-th file from the K-th")
    p.add_argument("--cache_dir", default="cache/crops/teacher", help="the training run's cache_dir + /teacher")
    a = p.parse_args(argv)
    try:
        k, n = (int(v) for v in a.shard.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        print(f"error: --shard must be K/N with 0 <= K < N, got {a.shard!r}", file=sys.stderr)
        return 2
    try:
        fs = scan_unlabelled(a.root)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fs = FaceSet(fs.root, fs.paths[k::n], fs.labels[k::n], [])
    kwargs = {"dlib": {"framing": a.framing}, "onnx": {"path": a.onnx_path}}.get(a.teacher, {})
    teacher = create_teacher(a.teacher, **kwargs)
    norms = np.linalg.norm(teacher_targets(fs, teacher, project_path(a.cache_dir), progress=True, flip=a.flip), axis=1)
    print(f"{len(fs.paths)} crops of {a.root} embedded by {teacher.name} (shard {k}/{n}) into {a.cache_dir}; "
          f"norms {norms.min():.3f}-{norms.max():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
