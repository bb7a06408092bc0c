"""Weight averaging: one model from the mean of several checkpoints' weights.

Checkpoints of one network along one training trajectory, for instance the ends of two cosine cycles
(a run and its continuation), can average to a better embedding than either (stochastic weight
averaging over cycles); measure it paired (``bench/ablation.py``), as it can also lose. The averaged weights have their own activation statistics, so BatchNorm's
running statistics are recomputed on training crops ("precise BN", ``models.recalibrate_bn``)::

    python -m facecore.training.averaging OUT.pt A.pt B.pt --bn_data ALIGNED_DIR \\
        [--export runs/models/X.pt --mantissa_bits 6 --metrics runs/metrics/X.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import check_meta, float_state_dict, load_weights, read_checkpoint, write_checkpoint
from ..core.paths import project_path
from ..core.runtime import set_threads
from ..networks.heads import backbone_dim, split_state
from ..networks.models import create_model, list_models, recalibrate_bn
from .data import load_crops, scan_identities, to_tensor
from .shipping import finalize_run, save_metrics

_SAME = ("arch", "embedding_dim", "input_size", "align_size", "mean", "std")


def average_state_dicts(state_dicts: list[dict], weights: list[float] | None = None) -> dict:
    """The weighted mean of floating tensors (``weights`` normalised to sum 1; default equal); other
    tensors (BatchNorm's step counters) are taken from the first. Keys and shapes must match."""
    if not state_dicts:
        raise ValueError("average_state_dicts needs at least one state dict")
    w = np.full(len(state_dicts), 1.0) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(state_dicts),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {len(state_dicts)} non-negative numbers with a positive sum, got {weights}")
    w = w / w.sum()
    first = state_dicts[0]
    for i, sd in enumerate(state_dicts[1:], 1):
        if sd.keys() != first.keys():
            diff = sorted(set(sd) ^ set(first))[:3]
            raise ValueError(f"state dict {i} has other keys than the first (e.g. {diff})")
        bad = [k for k in first if sd[k].shape != first[k].shape]
        if bad:
            raise ValueError(f"state dict {i}: {bad[0]} has shape {tuple(sd[bad[0]].shape)}, "
                             f"the first {tuple(first[bad[0]].shape)}")
    out = {}
    for k, v in first.items():
        if v.is_floating_point():
            out[k] = sum(float(wi) * sd[k].double() for wi, sd in zip(w, state_dicts)).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def bn_batches(data_dir: str | os.PathLike, meta: dict, images: int = 2560, batch_size: int = 128,
               seed: int = 0) -> list[torch.Tensor]:
    """``images`` random aligned crops of ``data_dir`` (``<identity>/<image>``) as the normalised batches
    a checkpoint with ``meta`` sees in training."""
    fs = scan_identities(data_dir)
    pick = np.sort(np.random.default_rng(seed).choice(len(fs), size=min(images, len(fs)), replace=False))
    crops = load_crops(fs.subset(pick), int(meta["align_size"]), progress=False)
    size = int(meta["input_size"])
    return [to_tensor(crops[i:i + batch_size], size) for i in range(0, len(crops), batch_size)]


def average_checkpoints(paths: list[str | os.PathLike], out: str | os.PathLike, weights: list[float] | None = None,
                        bn_data: str | os.PathLike | None = None, bn_images: int = 2560) -> dict:
    """Write the average of ``paths`` (one architecture and preprocessing) to ``out`` atomically, its
    BatchNorm statistics recomputed on ``bn_data`` when given; returns the new checkpoint's meta."""
    if len(paths) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    blobs = [read_checkpoint(p) for p in paths]
    meta = blobs[0]["meta"]
    check_meta(meta, paths[0], list_models())
    for p, b in zip(paths[1:], blobs[1:]):
        diff = [k for k in _SAME if b["meta"].get(k) != meta.get(k)]
        if diff:
            raise ValueError(f"{p}: meta {diff[0]!r} = {b['meta'].get(diff[0])!r}, but {paths[0]} has "
                             f"{meta.get(diff[0])!r}; only checkpoints of one network average")
        if bool(b["meta"].get("head")) != bool(meta.get("head")):
            raise ValueError(f"{p} and {paths[0]} differ in having a teacher-space head")
    sd = average_state_dicts([float_state_dict(b["state_dict"]) for b in blobs], weights)
    if bn_data is not None:
        body, _ = split_state(sd)
        model = create_model(meta["arch"], embedding_dim=backbone_dim(meta))
        load_weights(model, body, paths[0], "averaged weights")
        recalibrate_bn(model, bn_batches(bn_data, meta, bn_images))
        sd.update({k: v.detach().clone() for k, v in model.state_dict().items()})
    new_meta = {**meta, "config": {**meta.get("config", {}), "averaged_from": [str(p) for p in paths],
                                   "average_weights": list(weights) if weights else None,
                                   "bn_recalibrated_on": str(bn_data) if bn_data else None},
                "metrics": {}}
    write_checkpoint(out, {"meta": new_meta, "state_dict": sd})
    return new_meta


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.training.averaging OUT A B [...] [--bn_data DIR] [--export PATH ...]``"""
    p = argparse.ArgumentParser(prog="python -m facecore.training.averaging",
                                description="average checkpoints of one network into one (and export it)")
    p.add_argument("out", help="the averaged checkpoint to write")
    p.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one network")
    p.add_argument("--weights", help="comma-separated weights, one per checkpoint (default: equal)")
    p.add_argument("--bn_data", help="aligned training folder on which BatchNorm statistics are recomputed")
    p.add_argument("--bn_images", type=int, default=2560, help="crops used for the BatchNorm statistics")
    p.add_argument("--export", help="also export the average for shipping here (fp16), measured on LFW")
    p.add_argument("--mantissa_bits", type=int, default=10, help="fp16 mantissa bits kept by --export")
    p.add_argument("--lfw_dir", default="cache/aligned/lfw-112", help="aligned LFW crops for --export's check")
    p.add_argument("--metrics", help="write --export's metrics JSON here")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    try:
        weights = [float(x) for x in a.weights.split(",")] if a.weights else None
        if weights is not None and len(weights) != len(a.checkpoints):
            raise ValueError(f"--weights has {len(weights)} values for {len(a.checkpoints)} checkpoints")
        if a.threads:
            set_threads(a.threads)
        out = project_path(a.out)
        average_checkpoints([project_path(c) for c in a.checkpoints], out, weights,
                            project_path(a.bn_data) if a.bn_data else None, a.bn_images)
        print(f"averaged {len(a.checkpoints)} checkpoints -> {out}")
        if a.export:
            m = finalize_run(out.parent, out.name, a.export, a.lfw_dir, mantissa_bits=a.mantissa_bits,
                             extra={"averaged_from": [str(c) for c in a.checkpoints]})
            if a.metrics:
                save_metrics(project_path(a.metrics), m)
            print(json.dumps({k: m.get(k) for k in ("exported", "lfw_acc", "lfw_std", "threshold", "size_mb")},
                             default=float))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
