"""Evaluation protocols by name: ``evaluate("cfp-fp", embedder, data_root)``.

A protocol is ``f(embedder, data_root, **options) -> dict``; the dict's ``summary`` holds the
figures that ``benchmark_table`` puts in one row per model (e.g. ``{"LFW": 90.07, "LFW std": 1.14}``).
Shipped: ``lfw``, ``cfp-ff``, ``cfp-fp`` (10-fold verification accuracy, exactly LFW's fold and
threshold logic: ``facecore.evaluation.metrics.lfw_accuracy``) and ``id-rate`` (TPR@FPR and ROC-AUC on LFW's
query/distractor split). Add one with ``register_protocol``::

    @register_protocol("my-set")
    def my_set(embedder, data_root, **options):
        ...
        return {"summary": {"my-set": accuracy}}

Faces are found by one detector (``detector``: a name or object, ``facecore.detection.detectors``) and go the
one path detect -> align (``align_folder``, crops cached under ``aligned/`` of ``paths.cache_root()``) -> embed
(``embed_files``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.paths import cache_root, data_root as default_root
from ..core.registry import Registry
from ..detection.folder import MANIFEST, align_folder
from .cfp import align_cfp, read_pairs
from .embed import embed_files, model_key
from .identification import evaluate_embedder, lfw_id_split
from .lfw import lfw_protocol, pair_similarities
from .metrics import embedding_spread, verification

PROTOCOLS = Registry("protocol", add_with="facecore.evaluation.protocols.register_protocol")
LFW_ALIGN = {"min_face_frac": 0.2}  # the alignment stage's settings (notebooks/face-detection-and-alignment)
# ArcFace, ResNet-50 trained on CASIA-WebFace (Deng et al., CVPR 2019, table 2); their CFP-FP uses
# insightface's own crops, not this module's alignment.
REFERENCE_ROWS = {"ArcFace ResNet-50 / CASIA-WebFace (published)": {"CFP-FP": 95.56}}


register_protocol = PROTOCOLS.register
get_protocol = PROTOCOLS.lookup  # a protocol by name; an unknown name raises an error listing the valid ones


def evaluate(name: str, embedder, data_root: str | os.PathLike | None = None, **options) -> dict:
    """Run protocol ``name`` on an embedder (data under ``data_root``, default ``paths.data_root()``)."""
    fn = get_protocol(name)
    return fn(embedder, Path(data_root) if data_root else default_root(), **options)


def pair_result(embeddings: np.ndarray, i1: np.ndarray, i2: np.ndarray, issame: np.ndarray, folds: np.ndarray,
                fprs=()) -> dict:
    """Verification figures of embedded pairs; a pair with a missing embedding never matches (-1)."""
    sims = np.nan_to_num(pair_similarities(embeddings, i1, i2), nan=-1.0)
    res = verification(sims, issame, folds, fprs)
    ok = np.isfinite(embeddings).all(axis=1)
    res["spread"] = embedding_spread(embeddings[ok])
    return res


def _images(src: Path, aligned_dir, default: str, detector, progress: bool) -> tuple[Path, bool]:
    """(image root, whether it holds aligned crops). A given ``aligned_dir`` that exists holds the
    crops; one that does not exist means the raw photos, faces detected on the fly. Without
    ``aligned_dir`` the crops are made (once, resumably) under ``aligned/<default>`` of ``paths.cache_root()``."""
    if aligned_dir:
        return (Path(aligned_dir), True) if Path(aligned_dir).is_dir() else (src, False)
    dst = cache_root() / "aligned" / default
    if not (dst / MANIFEST).exists():
        align_folder(src, dst, detector=detector, progress=progress, **LFW_ALIGN)
    return dst, True


def lfw_pairs(data_root: Path, aligned_dir=None, detector: Any = "mtcnn", progress: bool = False):
    """(image files, whether they are aligned crops, ``(i1, i2, issame, fold)``) of LFW's pairs.txt."""
    src = Path(data_root) / "lfw" / "lfw-deepfunneled"
    root, aligned = _images(src, aligned_dir, "lfw-112", detector, progress)
    files, rows = lfw_protocol(str(root), str(Path(data_root) / "lfw" / "pairs.txt"))
    return files, aligned, rows


def cfp_pairs(protocol: str, data_root: Path, aligned_dir=None, detector: Any = "mtcnn", progress: bool = False):
    """(aligned crop files, ``align_cfp``'s counts, ``(i1, i2, issame, fold)``) of CFP's ``protocol`` ("FF" or "FP")."""
    root = Path(data_root) / "cfp"
    dst = Path(aligned_dir) if aligned_dir else cache_root() / "aligned" / "cfp-112"
    counts = align_cfp(root, dst, detector=detector, progress=progress, **LFW_ALIGN)
    files, rows = cfp_protocol(root, protocol)
    return [dst / f for f in files], counts, rows


@register_protocol("lfw")
def lfw(embedder, data_root: Path, aligned_dir: str | os.PathLike | None = None, detector: Any = "mtcnn",
        cache_dir: str | os.PathLike | None = None, flip: bool = True, fpr: float = 1e-3, fprs=(),
        progress: bool = False) -> dict:
    """LFW 10-fold accuracy on ``pairs.txt`` (flip-averaged embeddings of the aligned crops) and the
    thresholds of the mismatched pairs at ``fpr`` and ``fprs``; the keys of the shipped metrics."""
    files, aligned, (i1, i2, issame, folds) = lfw_pairs(data_root, aligned_dir, detector, progress)
    e = embed_files(files, embedder, detector=None if aligned else detector, aligned=aligned, flip=flip,
                    cache_dir=cache_dir, progress=progress)
    res = pair_result(e.embeddings, i1, i2, issame, folds, sorted({*fprs, fpr}))
    table = res["thresholds_by_fpr"]
    return {"lfw_acc": res["mean"], "lfw_std": res["std"], "lfw_spread": res["spread"],
            "lfw_missing_crops": int((~e.ok).sum()), "threshold": table[str(fpr)], "threshold_fpr": fpr,
            "thresholds_by_fpr": table, "accuracies": res["accuracies"], "auc": res["auc"],
            "summary": {"LFW": 100 * res["mean"], "LFW std": 100 * res["std"]}}


def _cfp(protocol: str, embedder, data_root: Path, aligned_dir=None, detector: Any = "mtcnn", cache_dir=None,
         flip: bool = True, progress: bool = False) -> dict:
    files, counts, (i1, i2, issame, folds) = cfp_pairs(protocol, data_root, aligned_dir, detector, progress)
    e = embed_files(files, embedder, aligned=True, flip=flip, cache_dir=cache_dir, progress=progress)
    res = pair_result(e.embeddings, i1, i2, issame, folds)
    label = f"CFP-{protocol}"
    return {"accuracy": res["mean"], "std": res["std"], "accuracies": res["accuracies"], "auc": res["auc"],
            "missing_crops": int((~e.ok).sum()), "alignment": counts,
            "summary": {label: 100 * res["mean"], f"{label} std": 100 * res["std"]}}


def cfp_protocol(cfp_root: str | os.PathLike, protocol: str):
    """The aligned-crop files (relative, ``<id>/<frontal|profile>/<n>.jpg``) that CFP's ``protocol`` ("FF"
    or "FP") uses, and ``(i1, i2, issame, fold)`` rows into them (as ``lfw.lfw_protocol``); rows are
    keyed by the whole relative path, since CFP's file names repeat across folders."""
    rel = lambda p: str(Path(p).relative_to("images").with_suffix(".jpg"))  # noqa: E731
    table = read_pairs(Path(cfp_root), protocol)
    pairs = [(rel(a), rel(b), bool(s), int(f)) for a, b, s, f in table.itertuples(index=False)]
    files = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    index = {f: r for r, f in enumerate(files)}
    i1 = np.array([index[p[0]] for p in pairs], np.int64)
    i2 = np.array([index[p[1]] for p in pairs], np.int64)
    return files, (i1, i2, np.array([p[2] for p in pairs]), np.array([p[3] for p in pairs], np.int64))


register_protocol("cfp-ff", lambda embedder, data_root, **kw: _cfp("FF", embedder, data_root, **kw))
register_protocol("cfp-fp", lambda embedder, data_root, **kw: _cfp("FP", embedder, data_root, **kw))


@register_protocol("id-rate")
def id_rate(embedder, data_root: Path, aligned_dir=None, detector: Any = "mtcnn", cache_dir=None,
            fprs=(1e-3, 1e-2), min_images: int = 3, max_query_identities: int = 0, max_distractors: int = 0,
            seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    """Identification rate (TPR@FPR) and ROC-AUC on LFW's query/distractor split (``facecore.evaluation.identification``)."""
    raw = Path(data_root) / "lfw" / "lfw-deepfunneled"
    root, aligned = _images(raw, aligned_dir, "lfw-112", detector, progress)
    split = lfw_id_split(raw, min_images, max_query_identities, max_distractors, seed)
    res = evaluate_embedder(embedder, root, split, list(fprs), aligned, cache_dir, device, progress,
                            detector=None if aligned else detector)
    res["summary"] = {**{f"TPR@FPR={f:g}": float(t) for f, t in zip(res["fprs"], res["tprs"])}, "ROC-AUC": res["auc"]}
    return res


def benchmark_table(embedders: dict[str, Any], protocols: list[str], data_root=None,
                    options: dict[str, dict] | None = None, reference: bool = True) -> tuple[pd.DataFrame, dict]:
    """One row per model (``embedders``: name -> embedder, or a no-argument function making one), one
    or two columns per protocol (its ``summary``), plus the published reference rows that have a figure
    in a measured column. Each model's row ends with ``weights``, the ``model_key`` of what it measured,
    so a row can be checked against the weights shipped now. Returns the table and every full result
    (``results[model][protocol]``)."""
    for p in protocols:
        get_protocol(p)  # an unknown name fails before any work
    rows, results = [], {}
    for name, emb in embedders.items():
        emb = emb() if callable(emb) and not hasattr(emb, "embed") else emb
        results[name] = {p: evaluate(p, emb, data_root, **(options or {}).get(p, {})) for p in protocols}
        row = {"model": name}
        for p in protocols:
            row.update(results[name][p].get("summary", {}))
        rows.append({**row, "weights": model_key(emb)})
    if reference:  # published figures, for the columns measured here
        measured = {c for r in rows for c in r}
        ref = {k: {c: x for c, x in v.items() if c in measured} for k, v in REFERENCE_ROWS.items()}
        rows += [{"model": k, **v} for k, v in ref.items() if v]
    return pd.DataFrame(rows), results


def table_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """Markdown of ``benchmark_table``: ``X`` and ``X std`` columns as ``mean +- std``; blanks for n/a."""
    cols = [c for c in table.columns if c not in ("model", "weights", "protocol") and not c.endswith(" std")]
    lines = ["| model | " + " | ".join(c + (" (%)" if f"{c} std" in table.columns else "") for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v, sd = row.get(c), row.get(f"{c} std")
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("")
            elif sd is not None and not (isinstance(sd, float) and np.isnan(sd)):
                cells.append(f"{v:.{digits}f} +- {sd:.{digits}f}")
            else:
                cells.append(f"{v:.{digits if f'{c} std' in table.columns else 4}f}")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
