"""Distillation data: unlabelled faces beside the labelled ones, and a teacher's embedding of every crop.

The ``distill`` loss (``facecore.networks.losses.DistillLoss``) takes ``(identity, teacher embedding)`` per
image; an unlabelled face has identity -1 and still teaches through its teacher embedding. Teacher
embeddings are computed once from the aligned training crops (``teacher.align`` re-frames each
112x112 ArcFace-template crop onto the teacher's own template) and cached by file content.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import float_state_dict, half_state_dict, read_checkpoint, write_checkpoint
from ..core.files import list_images
from ..core.paths import project_path
from ..core.preprocessing import cache_crop_size
from ..core.runtime import progress_bar
from ..evaluation.embed import embed_files
from ..networks.heads import PREFIX, fit_head
from ..networks.models import Embedder, create_model
from .data import FaceSet
from .data import load_crops, scan_identities, split_per_identity
from .teachers import create_teacher, teacher_names


@dataclass
class DistillData:
    """Teacher targets of the labelled training crops (rows of ``labelled``) and the unlabelled set."""

    labelled: np.ndarray  # (N_labelled, D) unit teacher embeddings, NaN where the teacher had no crop
    unlabelled: FaceSet  # labels all -1
    unlabelled_targets: np.ndarray  # (N_unlabelled, D)


def scan_unlabelled(root: str | os.PathLike, limit: int = 0) -> FaceSet:
    """Every image under ``root`` (any layout) as a set without identities (labels -1); ``limit``: the
    first N in sorted order (0: all)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"unlabelled faces: no folder {root} (align the unlabelled set first: docs/data.md)")
    paths = list_images(root)
    paths = paths[:limit] if limit else paths
    if not paths:
        raise ValueError(f"unlabelled faces: {root} holds no images")
    return FaceSet(root, paths, np.full(len(paths), -1, np.int64), [])


def teacher_targets(fs: FaceSet, teacher, cache_dir: str | os.PathLike | None, progress: bool = True,
                    flip: bool = False) -> np.ndarray:
    """(N, D) unit teacher embeddings of the aligned crops of ``fs`` (``flip``: averaged with the mirror's),
    cached by file content."""
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
    """Make a training run (``facecore.training.train``) a distillation run: the teacher's targets for every crop,
    and the unlabelled faces appended to the crops and the training rows (identity -1)."""
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


@dataclass
class HeadData:
    """A frozen student and what a teacher-space head learns from: the student's unit embeddings of the
    training crops and the teacher's raw embeddings of them; the same for the held-out validation crops."""

    student: object  # models.Embedder, weights rounded as they will ship
    blob: dict  # the student's checkpoint (meta, float32 state dict)
    features: np.ndarray
    targets: np.ndarray
    val_features: np.ndarray
    val_targets: np.ndarray


def head_data(checkpoint: str | os.PathLike, data_dir: str | os.PathLike, teacher, cache_dir: str | os.PathLike,
              unlabelled_dir: str | os.PathLike | None = None, min_images: int = 5, max_identities: int = 0,
              val_fraction: float = 0.1, seed: int = 0, unlabelled_limit: int = 0, mantissa_bits: int = 10,
              teacher_flip: bool = False, device: str = "cpu", progress: bool = True) -> HeadData:
    """The frozen student (its weights rounded as they will ship, ``mantissa_bits``) embeds the training
    split of ``data_dir`` (the run's ``min_images``/``val_fraction``/``seed``), the unlabelled crops and
    the validation split; the teacher's raw (uncentred) unit embedding of each comes from its cache."""
    blob = read_checkpoint(checkpoint)
    meta = blob["meta"]
    if meta.get("head"):
        raise ValueError(f"{checkpoint} already has a {meta['head']['kind']} head; start from the run's best.pt")
    model = create_model(meta["arch"], embedding_dim=int(meta["embedding_dim"]))
    model.load_state_dict(float_state_dict(half_state_dict(blob["state_dict"], mantissa_bits)))
    student = Embedder(model.to(device, memory_format=torch.channels_last).eval(), meta, device)
    size = cache_crop_size(int(meta["input_size"]))
    fs = scan_identities(data_dir, min_images, max_identities or None)
    train, val = split_per_identity(fs, val_fraction, seed)
    index = {p: i for i, p in enumerate(fs.paths)}
    tr, va = ([index[p] for p in part.paths] for part in (train, val))
    tdir = Path(cache_dir) / "teacher"
    feats = _embed(student, load_crops(fs, size, cache_dir, progress), progress)
    targets = teacher_targets(fs, teacher, tdir, progress, teacher_flip)
    x, t = [feats[tr]], [targets[tr]]
    if unlabelled_dir:
        unl = scan_unlabelled(unlabelled_dir, unlabelled_limit)
        x.append(_embed(student, load_crops(unl, size, cache_dir, progress), progress))
        t.append(teacher_targets(unl, teacher, tdir, progress, teacher_flip))
    return HeadData(student, blob, np.concatenate(x), np.concatenate(t), feats[va], targets[va])


def head_agreement(head, features: np.ndarray, targets: np.ndarray) -> float:
    """Mean cosine between a head's outputs and the teacher's targets (rows with a target)."""
    with torch.no_grad():
        p = head(torch.as_tensor(features)).numpy()
    cos = (p / np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12) * targets).sum(1)
    return float(np.nanmean(cos)) if len(cos) else float("nan")


def add_head(checkpoint: str | os.PathLike, out: str | os.PathLike, data_dir: str | os.PathLike, teacher,
             cache_dir: str | os.PathLike, unlabelled_dir: str | os.PathLike | None = None, min_images: int = 5,
             max_identities: int = 0, val_fraction: float = 0.1, seed: int = 0, unlabelled_limit: int = 0,
             kind: str = "linear", hidden: int = 512, epochs: int = 12, mantissa_bits: int = 10,
             teacher_flip: bool = False, device: str = "cpu", progress: bool = True) -> dict:
    """Fit a teacher-space head (``facecore.networks.heads``) on a trained student (``head_data``) and write ``out``
    with it. Returns the head's description: sizes, the rows it was fitted on and its mean cosine to the
    teacher on the held-out validation crops (``val_cos``)."""
    d = head_data(checkpoint, data_dir, teacher, cache_dir, unlabelled_dir, min_images, max_identities, val_fraction,
                  seed, unlabelled_limit, mantissa_bits, teacher_flip, device, progress)
    head = fit_head(d.features, d.targets, kind, hidden, epochs, seed=seed, progress=progress)
    meta = d.blob["meta"]
    info = {"kind": kind, "in_dim": int(meta["embedding_dim"]), "out_dim": int(d.targets.shape[1]),
            "hidden": int(hidden) if kind == "mlp" else 0, "teacher": getattr(teacher, "name", str(teacher)),
            "rows": int(len(d.features)), "epochs": int(epochs),
            "val_cos": head_agreement(head, d.val_features, d.val_targets)}
    state = {**d.blob["state_dict"], **{PREFIX + k: v for k, v in head.state_dict().items()}}
    write_checkpoint(out, {"meta": {**meta, "embedding_dim": info["out_dim"], "head": info}, "state_dict": state})
    return info


def add_run_head(cfg, run_dir: str | os.PathLike, teacher, kind: str = "linear", epochs: int = 12,
                 mantissa_bits: int = 10, device: str = "cpu", progress: bool = True) -> dict:
    """``add_head`` on a distillation run (a ``TrainConfig``): ``best.pt`` to ``best-head.pt``, on the run's
    data, split and teacher cache. A ``best-head.pt`` newer than ``best.pt`` with the same kind and epochs
    is kept (a rerun of the notebook resumes)."""
    run_dir = project_path(run_dir)
    src, out = run_dir / "best.pt", run_dir / "best-head.pt"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        head = read_checkpoint(out)["meta"].get("head") or {}
        if head.get("kind") == kind and head.get("epochs") == epochs:
            return {**head, "reused": True}
    return add_head(src, out, project_path(cfg.data_dir), teacher, project_path(cfg.cache_dir),
                    project_path(cfg.unlabelled_dir) if cfg.unlabelled_dir else None, cfg.min_images,
                    cfg.max_identities or 0, cfg.val_fraction, cfg.seed, cfg.unlabelled_limit, kind, epochs=epochs,
                    mantissa_bits=mantissa_bits, teacher_flip=cfg.teacher_flip, device=device, progress=progress)


def _embed(student, crops: np.ndarray, progress: bool, chunk: int = 1024) -> np.ndarray:
    """The student's unit embeddings of many crops, with a progress bar."""
    steps = range(0, len(crops), chunk)
    parts = [student.embed(crops[i:i + chunk]) for i in progress_bar(steps, desc="student", disable=not progress)]
    return np.concatenate(parts) if parts else np.zeros((0, int(student.meta["embedding_dim"])), np.float32)


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.training.distill ROOT [--shard K/N] [--teacher dlib] [--flip] [--cache_dir D]``: fill the
    teacher cache for the crops under ROOT before training. dlib's CPU build uses one thread, so run one
    process per core, each with its own ``--shard`` (every N-th file from the K-th, 0-based)."""
    p = argparse.ArgumentParser(prog="python -m facecore.training.distill", description="teacher embeddings of aligned crops")
    p.add_argument("root", help="aligned crops (any layout), e.g. a training DATA_DIR or UNLABELLED_DIR")
    p.add_argument("--teacher", default="dlib", choices=teacher_names())
    p.add_argument("--framing", default="ours", help="dlib teacher: ours or dlib")
    p.add_argument("--onnx_path", default="", help="onnx teacher: the model file")
    p.add_argument("--model_dir", default="", help="staged teachers (openvino-0095, sface, edgeface-xs and their "
                   "combination): the folder holding their files (default $FACECORE_TEACHERS)")
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
    kwargs = {"model_dir": a.model_dir} if a.model_dir and a.teacher not in ("dlib", "onnx") else kwargs
    try:
        teacher = create_teacher(a.teacher, **kwargs)
    except (FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    norms = np.linalg.norm(teacher_targets(fs, teacher, project_path(a.cache_dir), progress=True, flip=a.flip), axis=1)
    print(f"{len(fs.paths)} crops of {a.root} embedded by {teacher.name} (shard {k}/{n}) into {a.cache_dir}; "
          f"norms {norms.min():.3f}-{norms.max():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
