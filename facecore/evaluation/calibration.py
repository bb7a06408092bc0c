"""Verification thresholds that hold off LFW: each calibration set's genuine and impostor similarities,
the threshold each gives at an FPR, and the FPR and TPR that threshold realises on the others.

Sets by name (``SETS``): ``lfw`` (pairs.txt: 3,000 matched and 3,000 mismatched pairs), ``cfp-ff`` and
``cfp-fp`` (CFP's protocol pairs: 3,500 same and 3,500 different each), ``celeba-heldout`` (every pair of
the CelebA identities that no training set includes, ``tools/stage_celeba_heldout.py``, aligned under
``$FACECORE_WORK/aligned/celeba-heldout-112``). Embeddings are flip-averaged, from aligned crops, cached
with ``embed_files(..., cache_dir=...)`` as the protocols do; images without an embedding are left out.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.files import list_images
from ..core.paths import data_root as default_data_root, work_root
from ..detection.folder import MANIFEST
from .embed import embed_files
from .lfw import pair_similarities
from .metrics import accept_rate, query_pair_similarities, realised_fpr, threshold_at_fpr
from .protocols import cfp_pairs, lfw_pairs

SETS = ("lfw", "celeba-heldout", "cfp-ff", "cfp-fp")
LABELS = {"lfw": "LFW", "celeba-heldout": "CelebA held-out", "cfp-ff": "CFP-FF", "cfp-fp": "CFP-FP"}
HELDOUT_ALIGNED = ("aligned", "celeba-heldout-112")  # under work_root()


@dataclass
class PairSims:
    """Genuine (``pos``) and impostor (``neg``) pair similarities of one set."""

    pos: np.ndarray
    neg: np.ndarray
    images: int


def _pairs(embedder, files, i1, i2, issame, cache_dir) -> PairSims:
    e = embed_files(files, embedder, aligned=True, flip=True, cache_dir=cache_dir, progress=False)
    s = pair_similarities(e.embeddings, i1, i2)
    ok = np.isfinite(s)  # a pair with an image that did not embed says nothing about the threshold
    return PairSims(s[ok & issame], s[ok & ~issame], int(e.ok.sum()))


def lfw_sims(embedder, data_root: Path, cache_dir=None) -> PairSims:
    """LFW pairs.txt's matched and mismatched pairs (the ``lfw`` protocol's aligned crops)."""
    files, _, (i1, i2, issame, _) = lfw_pairs(data_root)
    return _pairs(embedder, files, i1, i2, issame, cache_dir)


def cfp_sims(protocol: str, embedder, data_root: Path, cache_dir=None) -> PairSims:
    """CFP's ``protocol`` ("FF" or "FP") same and different pairs (the ``cfp-*`` protocols' aligned crops)."""
    files, _, (i1, i2, issame, _) = cfp_pairs(protocol, data_root)
    return _pairs(embedder, files, i1, i2, issame, cache_dir)


def labelled_sims(embedder, aligned_dir: str | os.PathLike, cache_dir=None) -> PairSims:
    """Every pair of an aligned ``<identity>/<image>`` folder: same identity genuine, else impostor."""
    root = Path(aligned_dir)
    if not (root / MANIFEST).exists():
        raise FileNotFoundError(f"{root}: no aligned folder; stage the held-out identities "
                                "(tools/stage_celeba_heldout.py) and align them (python -m facecore.detection.folder)")
    files = [f for f in list_images(root) if "/" in f]
    e = embed_files([root / f for f in files], embedder, aligned=True, flip=True, cache_dir=cache_dir, progress=False)
    labels = np.array([f.split("/", 1)[0] for f in files])[e.ok]
    pos, neg, _ = query_pair_similarities(e.embeddings[e.ok], labels)
    return PairSims(pos, neg, int(e.ok.sum()))


def calibration_sets(embedder, sets=SETS, data_root=None, cache_dir=None, heldout_dir=None) -> dict[str, PairSims]:
    """Each named set's pair similarities for ``embedder`` (already ``without_head()`` where wanted)."""
    root = Path(data_root) if data_root else default_data_root()
    makers = {"lfw": lambda: lfw_sims(embedder, root, cache_dir),
              "cfp-ff": lambda: cfp_sims("FF", embedder, root, cache_dir),
              "cfp-fp": lambda: cfp_sims("FP", embedder, root, cache_dir),
              "celeba-heldout": lambda: labelled_sims(embedder, heldout_dir or work_root().joinpath(*HELDOUT_ALIGNED),
                                                      cache_dir)}
    unknown = [s for s in sets if s not in makers]
    if unknown:
        raise ValueError(f"calibration set {unknown[0]!r}: must be one of {', '.join(SETS)}")
    return {s: makers[s]() for s in sets}


def pooled(sims: dict[str, PairSims]) -> PairSims:
    """All sets' pairs together (the union)."""
    return PairSims(np.concatenate([s.pos for s in sims.values()]), np.concatenate([s.neg for s in sims.values()]),
                    sum(s.images for s in sims.values()))


def calibration_table(sims: dict[str, PairSims], fprs, extra: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """One row per (FPR, calibration set): the threshold the set's negatives give (``threshold_at_fpr``),
    and on each set the realised FPR and the TPR (genuine pairs strictly above). Calibration sets: each
    set, ``union`` (all negatives pooled) and ``strictest`` (the highest of the sets' thresholds); ``extra``
    adds rows of given thresholds (name -> {str(fpr): threshold}), e.g. a checkpoint's."""
    rows = []
    for f in fprs:
        thr = {s: threshold_at_fpr(p.neg, f) for s, p in sims.items()}
        thr["union"] = threshold_at_fpr(pooled(sims).neg, f)
        thr["strictest"] = max(thr[s] for s in sims)
        for name, table in (extra or {}).items():
            thr[name] = float(table[str(f)])
        for name, t in thr.items():
            row = {"fpr": f, "calibrated on": LABELS.get(name, name), "threshold": t}
            row.update({f"FPR {LABELS.get(s, s)}": realised_fpr(p.neg, t) for s, p in sims.items()})
            row.update({f"TPR {LABELS.get(s, s)}": accept_rate(p.pos, t) for s, p in sims.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def calibrate_thresholds(embedder, fprs, sets=SETS, **where) -> dict[str, float]:
    """``thresholds_by_fpr`` for a checkpoint's meta: at each FPR the strictest (highest) of the thresholds
    that ``sets`` give one by one, so that FPR holds on each of them (the union's pooled negatives are
    mostly CelebA's, the most lenient set; docs/evaluation.md). ``where``: ``calibration_sets``' folders."""
    sims = calibration_sets(embedder, sets, **where)
    return {str(f): max(threshold_at_fpr(p.neg, f) for p in sims.values()) for f in fprs}
