"""Glue shared by the notebooks: paths, devices, and turning a finished run into a shipped model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .files import atomic_write_text
from .paths import PROJECT_ROOT

# LFW false-positive rates at which every exported model stores a threshold (meta["thresholds_by_fpr"]);
# realtime.py --fpr picks one.
CALIBRATION_FPRS = (1e-3, 3e-3, 1e-2, 3e-2, 5e-2, 1e-1)


def project_path(p: str | os.PathLike) -> Path:
    """A path relative to the project root (absolute paths pass through)."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; a named device is checked."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"DEVICE={name!r} but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return name


def set_threads(n: int) -> None:
    """Torch CPU threads (0 keeps the default). One thread each is fastest when jobs share cores."""
    import torch

    if n > 0:
        torch.set_num_threads(n)


def finalize_run(run_dir: str | os.PathLike, checkpoint: str = "best.pt", export_path: str | None = None,
                 lfw_dir: str | None = None, fpr: float = 1e-3, device: str = "cpu", extra: dict | None = None,
                 mantissa_bits: int = 10) -> dict:
    """Export a run's checkpoint as fp16 (``mantissa_bits`` of fp16's 10 kept, see ``models.round_mantissa``),
    evaluate the exported weights on LFW and calibrate their threshold. Returns the metrics.

    The threshold is the cosine similarity that LFW's mismatched pairs exceed at rate ``fpr``; it is
    stored in the checkpoint (``meta["threshold"]``) for realtime.py. Without ``export_path`` the run's
    checkpoint itself is evaluated.
    """
    import shutil
    import tempfile

    run_dir = project_path(run_dir)
    # Work on a private copy: a training process may replace best.pt while we evaluate.
    tmp = tempfile.NamedTemporaryFile(suffix=".pt", delete=False)
    tmp.close()
    shutil.copyfile(run_dir / checkpoint, tmp.name)
    try:
        return _finalize(Path(tmp.name), checkpoint, export_path, lfw_dir, fpr, device, extra, mantissa_bits)
    finally:
        os.unlink(tmp.name)


def _finalize(src: Path, checkpoint: str, export_path: str | None, lfw_dir: str | None, fpr: float,
              device: str, extra: dict | None, mantissa_bits: int) -> dict:
    from .models import read_checkpoint
    from .train import export_for_shipping

    meta = read_checkpoint(src)["meta"]
    metrics: dict = {"checkpoint": checkpoint, "epoch": meta["metrics"].get("epoch"), "identities": len(meta["classes"]),
                     "val_loss": meta["metrics"].get("val_loss"), "val_acc": meta["metrics"].get("val_acc"),
                     "val_verif_acc": meta["metrics"].get("val_verif_acc"), **(extra or {})}
    if export_path:  # measure and calibrate what ships (fp16), not the float32 training checkpoint
        dst = project_path(export_path)
        tmp = dst.with_name(f".{dst.name}.export.tmp")  # the shipped file changes only once all is done
        metrics["mantissa_bits"] = int(mantissa_bits)
        try:
            export_for_shipping(src, tmp, metrics, mantissa_bits)
            if lfw_dir and project_path(lfw_dir).is_dir():
                metrics.update(evaluate_lfw(tmp, lfw_dir, device, fpr))
                _set_threshold(tmp, metrics["threshold"], fpr, metrics["thresholds_by_fpr"], metrics)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        metrics["exported"] = str(export_path)
        metrics["size_mb"] = round(dst.stat().st_size / 1e6, 2)
    elif lfw_dir and project_path(lfw_dir).is_dir():
        metrics.update(evaluate_lfw(src, lfw_dir, device, fpr))
    return metrics


def evaluate_lfw(checkpoint: str | os.PathLike, lfw_dir: str | os.PathLike, device: str = "cpu",
                 fpr: float = 1e-3) -> dict:
    """LFW 10-fold accuracy (flip-augmented embeddings) of a checkpoint on a folder of aligned LFW
    crops, and the similarity threshold at ``fpr`` on the mismatched pairs."""
    from .embed import embed_files
    from .lfw import pair_similarities
    from .metrics import lfw_accuracy, threshold_at_fpr
    from .models import load_embedder
    from .validate import embedding_spread, lfw_protocol

    files, (i1, i2, issame, folds) = lfw_protocol(str(project_path(lfw_dir)))
    e = embed_files(files, load_embedder(project_path(checkpoint), device), aligned=True, flip=True, progress=False)
    sims = np.nan_to_num(pair_similarities(e.embeddings, i1, i2), nan=-1.0)  # a missing crop never matches
    res = lfw_accuracy(sims, issame, folds=folds)
    table = {str(f): float(threshold_at_fpr(sims[~issame], f)) for f in sorted({*CALIBRATION_FPRS, fpr})}
    return {"lfw_acc": float(res["mean"]), "lfw_std": float(res["std"]), "lfw_spread": embedding_spread(e.embeddings[e.ok]),
            "lfw_missing_crops": int((~e.ok).sum()), "threshold": table[str(fpr)], "threshold_fpr": fpr,
            "thresholds_by_fpr": table}


def calibrate_checkpoint(path: str | os.PathLike, lfw_dir: str | os.PathLike, device: str = "cpu",
                         fpr: float = 1e-3) -> dict:
    """Recompute a shipped checkpoint's LFW thresholds (``threshold`` at ``fpr`` and the table at
    ``CALIBRATION_FPRS``) and store them in its meta; the weights are untouched."""
    res = evaluate_lfw(path, lfw_dir, device, fpr)
    _set_threshold(project_path(path), res["threshold"], fpr, res["thresholds_by_fpr"])
    return res


def save_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """Write a metrics dict as JSON, atomically."""
    atomic_write_text(project_path(path), json.dumps(metrics, indent=1, default=float))


def _set_threshold(path: Path, threshold: float, fpr: float, table: dict | None = None,
                   metrics: dict | None = None) -> None:
    from .models import is_compressed, read_checkpoint, write_checkpoint

    compress = is_compressed(path)
    blob = read_checkpoint(path)
    blob["meta"]["threshold"], blob["meta"]["threshold_fpr"] = float(threshold), float(fpr)
    blob["meta"]["metrics"] = {**blob["meta"].get("metrics", {}), **(metrics or {})}
    if table:
        blob["meta"]["thresholds_by_fpr"] = {str(k): float(v) for k, v in table.items()}
    write_checkpoint(path, blob, compress=compress)
