"""Turning a finished run into a shipped model: export (fp16), LFW evaluation, threshold
calibration, and the SHA-256 that the zoo table (facecore/core/zoo_table.py) records for it."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..core.checkpoint import export_for_shipping, read_checkpoint, set_thresholds
from ..core.files import atomic_write_text, commit_output, output_target
from ..core.paths import project_path
from ..core.zoo import record_hash, shipped_models
from ..evaluation.calibration import LABELS, SETS, calibrate_thresholds
from ..evaluation.embed import embed_files
from ..evaluation.lfw import lfw_protocol, pair_similarities
from ..evaluation.metrics import embedding_spread, lfw_accuracy, paired_difference, threshold_at_fpr
from ..evaluation.protocols import evaluate
from ..networks.models import load_embedder

# LFW false-positive rates at which every exported model stores a threshold (meta["thresholds_by_fpr"]);
# realtime.py --fpr picks one.
CALIBRATION_FPRS = (1e-3, 3e-3, 1e-2, 3e-2, 5e-2, 1e-1)


def finalize_run(run_dir: str | os.PathLike, checkpoint: str = "best.pt", export_path: str | None = None,
                 lfw_dir: str | None = None, fpr: float = 1e-3, device: str = "cpu", extra: dict | None = None,
                 mantissa_bits: int = 10) -> dict:
    """Export a run's checkpoint as fp16 (``mantissa_bits`` of fp16's 10 kept, see ``checkpoint.round_mantissa``),
    evaluate the exported weights on LFW and calibrate their threshold. Returns the metrics.

    The threshold is the cosine similarity that LFW's mismatched pairs exceed at rate ``fpr``; it is
    stored in the checkpoint (``meta["threshold"]``) for realtime.py. Without ``export_path`` the run's
    checkpoint itself is evaluated. Exporting over a shipped model (``zoo_table.params``) records the new
    file's SHA-256 in the zoo table; the metrics carry it as ``sha256``.
    """
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
    meta = read_checkpoint(src)["meta"]
    metrics: dict = {"checkpoint": checkpoint, "epoch": meta["metrics"].get("epoch"), "identities": len(meta["classes"]),
                     "val_loss": meta["metrics"].get("val_loss"), "val_acc": meta["metrics"].get("val_acc"),
                     "val_verif_acc": meta["metrics"].get("val_verif_acc"), **(extra or {})}
    with_lfw = bool(lfw_dir) and project_path(lfw_dir).is_dir()
    if not export_path:
        return {**metrics, **(evaluate_lfw(src, lfw_dir, device, fpr) if with_lfw else {})}
    dst = project_path(export_path)  # measure and calibrate what ships (fp16), not the float32 training checkpoint
    tmp = output_target(dst, "export_path").with_name(f".{dst.name}.export.tmp")  # the shipped file changes once all is done
    metrics["mantissa_bits"] = int(mantissa_bits)
    try:
        export_for_shipping(src, tmp, metrics, mantissa_bits)
        if with_lfw:
            metrics.update(evaluate_lfw(tmp, lfw_dir, device, fpr))
            if meta.get("head"):  # its backbone alone too (realtime.py's default)
                metrics["backbone"] = _backbone_figures(evaluate_lfw(tmp, lfw_dir, device, fpr, head=False))
            set_thresholds(tmp, metrics["threshold"], fpr, metrics["thresholds_by_fpr"], metrics,
                           backbone=metrics.get("backbone"))
        commit_output(tmp, dst, "export_path")
    finally:
        tmp.unlink(missing_ok=True)
    metrics["exported"] = str(export_path)
    metrics["size_mb"] = round(dst.stat().st_size / 1e6, 2)
    metrics["sha256"] = record_hash(dst)[1]
    return metrics


def _backbone_figures(m: dict) -> dict:
    keys = ("lfw_acc", "lfw_std", "threshold", "threshold_fpr", "thresholds_by_fpr", "lfw_fold_accuracies")
    return {**{k: m[k] for k in keys if k in m}, "calibrated_on": ["LFW"]}


def _embedder(path: str | os.PathLike, device: str = "cpu", head: bool = False):
    """The embedding realtime.py matches with: a distilled student's backbone alone unless ``head``."""
    emb = load_embedder(path, device)
    return emb if head else emb.without_head()


def calibrate_on_sets(path: str | os.PathLike, sets=SETS, device: str = "cpu", head: bool = False, **where) -> dict:
    """Store in checkpoint ``path`` thresholds that keep their FPR on every one of ``sets``
    (``evaluation.calibration.calibrate_thresholds``: at each of ``CALIBRATION_FPRS`` the strictest set's),
    for the embedding realtime.py uses (a headed student's backbone unless ``head``: ``meta["backbone"]``).
    ``where``: the sets' folders (``calibration_sets``). A shipped model's new SHA-256 is recorded. Returns the table."""
    table = calibrate_thresholds(_embedder(path, device, head), CALIBRATION_FPRS, sets, **where)
    meta, on, at = read_checkpoint(path)["meta"], [LABELS.get(s, s) for s in sets], min(CALIBRATION_FPRS)
    if meta.get("head") and not head:
        backbone = {**(meta.get("backbone") or {}), "threshold": table[str(at)], "threshold_fpr": at,
                    "thresholds_by_fpr": table, "calibrated_on": on}
        set_thresholds(path, meta["threshold"], meta["threshold_fpr"], backbone=backbone,
                       calibrated_on=meta.get("calibrated_on"))
    else:
        set_thresholds(path, table[str(at)], at, table, calibrated_on=on)
    if Path(path).resolve() in {Path(p).resolve() for p, _ in shipped_models().values()}:
        record_hash(Path(path))
    return table


def evaluate_lfw(checkpoint: str | os.PathLike, lfw_dir: str | os.PathLike, device: str = "cpu",
                 fpr: float = 1e-3, head: bool = True) -> dict:
    """LFW 10-fold accuracy (flip-augmented embeddings) of a checkpoint on a folder of aligned LFW
    crops, and the similarity threshold at ``fpr`` on the mismatched pairs; ``head=False``: a distilled
    student's backbone without its teacher-space head."""
    files, (i1, i2, issame, folds) = lfw_protocol(str(project_path(lfw_dir)))
    emb = load_embedder(project_path(checkpoint), device)
    e = embed_files(files, emb if head else emb.without_head(), aligned=True, flip=True, progress=False)
    sims = np.nan_to_num(pair_similarities(e.embeddings, i1, i2), nan=-1.0)  # a missing crop never matches
    res = lfw_accuracy(sims, issame, folds=folds)
    table = {str(f): float(threshold_at_fpr(sims[~issame], f)) for f in sorted({*CALIBRATION_FPRS, fpr})}
    return {"lfw_acc": float(res["mean"]), "lfw_std": float(res["std"]), "lfw_spread": embedding_spread(e.embeddings[e.ok]),
            "lfw_missing_crops": int((~e.ok).sum()), "threshold": table[str(fpr)], "threshold_fpr": fpr,
            "thresholds_by_fpr": table, "lfw_fold_accuracies": [float(a) for a in res["accuracies"]]}


def calibrate_checkpoint(path: str | os.PathLike, lfw_dir: str | os.PathLike, device: str = "cpu",
                         fpr: float = 1e-3) -> dict:
    """Recompute a shipped checkpoint's LFW thresholds (``threshold`` at ``fpr`` and the table at
    ``CALIBRATION_FPRS``) and store them in its meta; the weights are untouched (the file's SHA-256
    changes and is recorded in the zoo table when it is a shipped model)."""
    res = evaluate_lfw(path, lfw_dir, device, fpr)
    set_thresholds(project_path(path), res["threshold"], fpr, res["thresholds_by_fpr"])
    record_hash(project_path(path))
    return res


def save_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """Write a metrics dict as JSON, atomically."""
    atomic_write_text(project_path(path), json.dumps(metrics, indent=1, default=float))


def promote(candidate: str | os.PathLike, name: str, lfw_dir: str | os.PathLike | None = None, device: str = "cpu",
            metrics_from: str | os.PathLike | None = None, metrics_to: str | os.PathLike | None = None,
            force: bool = False, cache_dir: str | os.PathLike | None = None, head: bool = False,
            calibrate: tuple[str, ...] = (), **where) -> dict:
    """Replace the shipped model ``name`` by the exported ``candidate`` only if it is better: both are
    measured side by side by the ``lfw`` protocol (flip embeddings, the same aligned crops), as realtime.py
    matches (a distilled student's backbone alone unless ``head``), and the candidate must have the higher
    accuracy (``force``: replace anyway). On replacement the thresholds are recalibrated on the sets
    ``calibrate`` (``calibrate_on_sets``; none: the candidate's own LFW ones are kept), the SHA-256 is
    recorded in the zoo table and ``metrics_from`` (the candidate's metrics JSON) is copied to ``metrics_to``;
    ``cache_dir``: the embedding cache (``embed_files``); ``where``: the calibration sets' folders.
    Returns both accuracies and their fold-paired difference."""
    models = shipped_models()
    if name not in models:
        raise ValueError(f"{name!r} is not a shipped model; the shipped models are {sorted(models)}")
    if not Path(candidate).is_file():
        raise FileNotFoundError(f"candidate model {candidate} not found (a finished run's export, e.g. runs/models/*.pt)")
    old_path = models[name][0]
    old = evaluate("lfw", _embedder(old_path, device, head), aligned_dir=lfw_dir, cache_dir=cache_dir)
    new = evaluate("lfw", _embedder(candidate, device, head), aligned_dir=lfw_dir, cache_dir=cache_dir)
    out = {"name": name, "old_lfw": old["lfw_acc"], "new_lfw": new["lfw_acc"], "new_std": new["lfw_std"],
           "paired": paired_difference(new["accuracies"], old["accuracies"]), "promoted": False}
    if new["lfw_acc"] <= old["lfw_acc"] and not force:
        print(f"{candidate}: LFW {100 * new['lfw_acc']:.2f}% does not beat the shipped {name} "
              f"({100 * old['lfw_acc']:.2f}%); kept the shipped file")
        return out
    table = _install(Path(candidate), Path(old_path), calibrate, device, head, cache_dir=cache_dir, **where)
    if calibrate:
        out["thresholds_by_fpr"] = table
    out["sha256"], out["promoted"] = record_hash(old_path)[1], True
    if metrics_from and metrics_to:
        m = json.loads(Path(metrics_from).read_text())
        shipped = Path(models[name][0])
        rel = shipped.relative_to(project_path(".")) if shipped.is_relative_to(project_path(".")) else shipped
        m.update({"exported": str(rel), "sha256": out["sha256"],
                  "promoted_from": str(candidate), "lfw_side_by_side": {k: out[k] for k in ("old_lfw", "new_lfw", "paired")}})
        if calibrate:  # the thresholds the shipped file stores, where realtime.py reads them
            m = with_calibration(m, out["thresholds_by_fpr"], calibrate, head)
        atomic_write_text(project_path(metrics_to), json.dumps(m, indent=1, default=float))
    print(f"{name}: LFW {100 * old['lfw_acc']:.2f}% -> {100 * new['lfw_acc']:.2f}% "
          f"(paired by fold {100 * out['paired']['mean']:+.2f} +- {100 * out['paired']['se']:.2f})")
    return out


def _install(src: Path, dst: Path, sets, device: str, head: bool, **where) -> dict | None:
    """Replace shipped file ``dst`` by ``src`` in one step, its thresholds first recalibrated on ``sets``
    (``calibrate_on_sets``; none: as they are). Returns the threshold table, or None."""
    tmp = output_target(dst).with_name(f".{dst.name}.ship.tmp")
    shutil.copyfile(src, tmp)
    try:
        table = calibrate_on_sets(tmp, sets, device, head, **where) if sets else None
        commit_output(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return table


def with_calibration(m: dict, table: dict, sets, head: bool = False) -> dict:
    """Metrics ``m`` with the thresholds ``calibrate_on_sets`` stored (``table``, on ``sets``): in
    ``m["backbone"]`` for a headed student unless ``head``, as in the checkpoint."""
    at = min(CALIBRATION_FPRS)
    figures = {"threshold": table[str(at)], "threshold_fpr": at, "thresholds_by_fpr": table,
               "calibrated_on": [LABELS.get(c, c) for c in sets]}
    return {**m, "backbone": {**m["backbone"], **figures}} if "backbone" in m and not head else {**m, **figures}


def recalibrate(name: str, sets=SETS, device: str = "cpu", head: bool = False,
                metrics: str | os.PathLike | None = None, **where) -> dict:
    """Recalibrate the shipped model ``name`` in place on ``sets`` (``calibrate_on_sets``; the weights are
    untouched), record its new SHA-256 and write the thresholds into its metrics JSON ``metrics``.
    ``where``: the sets' folders and ``cache_dir``. Returns the threshold table."""
    models = shipped_models()
    if name not in models:
        raise ValueError(f"{name!r} is not a shipped model; the shipped models are {sorted(models)}")
    path = Path(models[name][0])
    table = _install(path, path, sets, device, head, **where)
    sha = record_hash(path)[1]
    if metrics:
        m = with_calibration(json.loads(project_path(metrics).read_text()), table, sets, head)
        atomic_write_text(project_path(metrics), json.dumps({**m, "sha256": sha}, indent=1, default=float))
    return table


def _sets(text: str) -> tuple[str, ...]:
    sets = tuple(s for s in text.split(",") if s)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ValueError(f"--calibrate {unknown[0]!r}: must be one of {', '.join(SETS)}")
    return sets


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.training.shipping promote CANDIDATE NAME [--metrics-from F --metrics-to G] [--force]``
    or ``... calibrate NAME [--calibrate SETS] [--metrics F]``"""
    p = argparse.ArgumentParser(prog="python -m facecore.training.shipping", description="replace a shipped model by a better one")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("promote", help="measure CANDIDATE and shipped NAME side by side on LFW; replace if better")
    q.add_argument("candidate")
    q.add_argument("name")
    q.add_argument("--lfw_dir", default="cache/aligned/lfw-112", help="aligned LFW crops (alignment stage)")
    q.add_argument("--cache_dir", default="cache/embeddings")
    q.add_argument("--metrics-from", dest="metrics_from")
    q.add_argument("--metrics-to", dest="metrics_to")
    q.add_argument("--force", action="store_true", help="replace even when not better")
    q.add_argument("--head", action="store_true", help="compare and calibrate a distilled student's teacher-space "
                   "head, not the backbone embedding realtime.py matches with")
    q.add_argument("--calibrate", default=",".join(SETS),
                   help=f"comma-separated calibration sets whose strictest threshold is stored, of {', '.join(SETS)} "
                        "(default: all; celeba-heldout needs tools/stage_celeba_heldout.py); '' keeps the candidate's LFW ones")
    c = sub.add_parser("calibrate", help="recalibrate shipped NAME's thresholds in place on the calibration sets")
    c.add_argument("name")
    c.add_argument("--calibrate", default=",".join(SETS), help="comma-separated calibration sets (default: all)")
    c.add_argument("--head", action="store_true", help="a distilled student's teacher-space head, not its backbone")
    c.add_argument("--metrics", help="the model's metrics JSON, whose thresholds are updated too")
    c.add_argument("--cache_dir", default="cache/embeddings")
    a = p.parse_args(argv)
    try:
        sets = _sets(a.calibrate)
        if a.cmd == "calibrate":
            r = recalibrate(a.name, sets, head=a.head, metrics=a.metrics, cache_dir=project_path(a.cache_dir))
            print(json.dumps(r, default=float))
            return 0
        r = promote(a.candidate, a.name, project_path(a.lfw_dir), metrics_from=a.metrics_from, metrics_to=a.metrics_to,
                    force=a.force, cache_dir=project_path(a.cache_dir), head=a.head, calibrate=sets)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
