"""Identification rate (TPR@FPR) at scale: 10k queries x 1M distractors without holding the negatives.

Exactly ``facecore.evaluation.metrics.id_rate`` (same thresholds, same TPR, bit for bit), computed in tiles:

1. Similarities are the canonical ones of ``facecore.evaluation.metrics``: float64 cosine rounded to a multiple
   of 2**-24, held as the integer ``u = s * 2**24 + 2**24``.
2. A pilot (random query rows x random queries and distractors) sees the range of the similarities
   and where each FPR's threshold rank roughly falls. It fixes a ``Binning`` of that range (at most
   2**16 bins, each a power-of-two run of grid values, plus an under- and an overflow bin): an
   exact, monotone integer function of the similarity.
3. One pass over all (query, query) and (query, distractor) tiles counts every bin and keeps the
   similarities in the few bins the pilot points at. The counts say exactly which bin holds rank
   ``int(FPR * n_negatives)``; the threshold is the right order statistic of that bin's kept values.
   If the pilot missed it, a second pass keeps just that bin (``passes``), so the result is exact
   either way.

ROC points at the bin edges are exact; the ROC-AUC counts the negatives in a positive's own bin as
ties, so it is within ``auc_max_error`` of the exact AUC (0 when every bin is one grid value).
``exact=False`` uses float32 products (faster, e.g. on GPUs with slow float64): similarities then
differ from the canonical ones by float32 rounding (<= 3e-5, typically 1e-7).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .idrate_tiles import GRID, Binning, TileStats, prepare_rows, scan_tiles
from .metrics import fpr_rank, roc_from_histograms

def _keep_bins(est: np.ndarray, ranks: list[int], n_neg: int, n_pilot: int, sigmas: float) -> np.ndarray:
    """Bins likely to hold each rank (counted from the top), from pilot counts scaled to the population."""
    keep = np.zeros(len(est) + 1, bool)  # + the sentinel bin
    above = np.cumsum(est[::-1])[::-1]  # above[b]: estimated negatives in bins >= b
    for k in ranks:
        p = (k + 0.5) / n_neg
        delta = sigmas * math.sqrt(p * (1 - p) * 4 / max(n_pilot, 1)) * n_neg + 2 * n_neg / max(n_pilot, 1)
        hi = int(np.searchsorted(-above, -(k - delta), side="left"))  # first bin with above <= k - delta
        lo = int(np.searchsorted(-above, -(k + delta), side="left"))
        keep[max(min(hi, lo) - 2, 0):min(max(hi, lo) + 2, len(est))] = True
    return keep


def _select(hist: np.ndarray, kept: np.ndarray, binning: Binning, k: int) -> tuple[int | None, int]:
    """(the value ``u`` of rank k from the top, or None if its bin was not kept; that bin).

    ``kept`` must be sorted ascending.
    """
    above = np.cumsum(hist[::-1])[::-1]
    b = int(np.searchsorted(-above, -k, side="left")) - 1  # last bin with above[b] > k
    n_higher = int(above[b + 1]) if b + 1 < len(hist) else 0
    lower = lambda j: -1 if j == 0 else (j + binning.base) << binning.shift  # noqa: E731
    lo = np.searchsorted(kept, lower(b), side="left")
    hi = len(kept) if b + 1 >= binning.size else np.searchsorted(kept, lower(b + 1), side="left")
    if hi - lo != hist[b]:
        return None, b
    return int(kept[hi - 1 - (k - n_higher)]), b


def id_rate_streaming(query_emb: np.ndarray, query_labels, distractor_emb, fprs, device: str = "cpu",
                      exact: bool = True, query_block: int = 2048, distractor_block: int = 4096,
                      pilot_pairs: int = 30_000_000, window_sigmas: float = 8.0, seed: int = 0,
                      backend: str = "auto", progress: bool = True) -> dict:
    """``facecore.evaluation.metrics.id_rate`` without holding the negatives: also ROC points and ROC-AUC.

    ``distractor_emb`` may be any array-like read by row slices (e.g. ``np.load(..., mmap_mode='r')``).
    ``backend``: how tiles are counted, ``numpy`` (CPU default, cache-sized blocks) or ``torch``
    (GPU default). ``pilot_pairs``/``window_sigmas`` trade memory for the risk of a second pass; the
    result does not depend on them. Returns the keys of ``id_rate`` plus ``auc``, ``auc_max_error``,
    ``roc_fpr``/``roc_tpr``/``roc_thresholds`` (bin edges, rule ``s >= threshold``), per-bin counts
    ``hist_pos``, ``hist_query_neg``, ``hist_distractor_neg`` over ``bin_lower`` edges, ``passes``
    and ``seconds``.
    """
    t0 = time.perf_counter()
    labels, n_d, use_numpy = _check(query_emb, query_labels, distractor_emb, device, backend)
    codes = np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)
    order = np.argsort(codes, kind="stable")  # same identities adjacent (the metric ignores order)
    codes, n_q = codes[order], len(labels)
    if not (np.bincount(codes) > 1).any():
        raise ValueError("no positive pairs: the query set needs an identity with at least two images")
    n_qq = (n_q * n_q - int((np.bincount(codes) ** 2).sum())) // 2
    n_neg = n_qq + n_q * n_d
    ranks = [fpr_rank(f, n_neg) for f in fprs]
    dtype = torch.float64 if exact else torch.float32
    prec = torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        q = prepare_rows(np.asarray(query_emb)[order], float(GRID), dtype, device, "query_emb")
        scan = dict(q=q, codes=codes, distractor_emb=distractor_emb, dtype=dtype, device=device,
                    query_block=query_block, distractor_block=distractor_block)
        binning, est, n_pilot = _pilot(scan, n_qq, n_q * n_d, pilot_pairs, seed, use_numpy)
        stats = TileStats(binning, _keep_bins(est, ranks, n_neg, n_pilot, window_sigmas), use_numpy)
        scan_tiles(stats=stats, progress=progress, desc="id-rate", **scan)
        hist_neg = (stats.hist["query"] + stats.hist["distractor"])[:binning.size]
        thr_u, passes = _thresholds(scan, stats, hist_neg, ranks, progress, use_numpy)
    finally:
        torch.set_float32_matmul_precision(prec[0])
        torch.backends.cuda.matmul.allow_tf32 = prec[1]
    pos_u = np.concatenate(stats.pos)
    out = {"fprs": np.asarray(fprs, np.float64), "thresholds": (thr_u - GRID).astype(np.float64) / GRID,
           "tprs": np.array([float(np.mean(pos_u > t)) for t in thr_u]), "n_positives": len(pos_u),
           "n_negatives": n_neg, "n_query_negatives": n_qq, "n_distractor_negatives": n_q * n_d}
    hist_pos = np.bincount(binning.of(pos_u), minlength=binning.size)
    edges = binning.lower_edges()
    out.update(roc_from_histograms(hist_pos, hist_neg, edges, single_valued=binning.shift == 0))
    out.update(hist_pos=hist_pos, hist_query_neg=stats.hist["query"][:binning.size],
               hist_distractor_neg=stats.hist["distractor"][:binning.size], bin_lower=edges, passes=passes,
               seconds=time.perf_counter() - t0)
    return out


def _check(query_emb, query_labels, distractor_emb, device: str, backend: str) -> tuple[np.ndarray, int, bool]:
    """(labels, number of distractors, whether tiles are counted with numpy); ValueError on bad input."""
    labels = np.asarray(query_labels)
    if len(labels) != len(query_emb):
        raise ValueError(f"query_labels has {len(labels)} entries for {len(query_emb)} query embeddings")
    n_d = 0 if distractor_emb is None else len(distractor_emb)
    if n_d and np.shape(distractor_emb)[1] != np.shape(query_emb)[1]:
        raise ValueError(f"distractor_emb has dimension {np.shape(distractor_emb)[1]}, queries {np.shape(query_emb)[1]}")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    use_numpy = backend == "numpy" or (backend == "auto" and torch.device(device).type == "cpu")
    if use_numpy and torch.device(device).type != "cpu":
        raise ValueError("backend='numpy' needs device='cpu'")
    return labels, n_d, use_numpy


def _pilot(scan: dict, n_qq: int, n_qd: int, pilot_pairs: int, seed: int,
           use_numpy: bool) -> tuple[Binning, np.ndarray, int]:
    """(binning, estimated negatives per bin, pilot pairs seen) from random query rows x random queries
    and distractors: thousands of rows, ~5% of the work at most."""
    n_q, n_d = len(scan["q"]), 0 if scan["distractor_emb"] is None else len(scan["distractor_emb"])
    rng = np.random.default_rng(seed)
    pilot_pairs = min(pilot_pairs, max((n_qq + n_qd) // 20, 100_000))
    n_rows = min(n_q, max(256, pilot_pairs // 2000))
    n_cols = max(pilot_pairs // n_rows, 1)
    sample = (np.sort(rng.choice(n_q, n_rows, replace=False)), np.sort(rng.choice(n_q, min(n_q, n_cols), replace=False)),
              np.sort(rng.choice(n_d, min(n_d, n_cols), replace=False)) if n_d else None)
    pilot = TileStats(None, None, use_numpy)
    scan_tiles(stats=pilot, progress=False, desc="pilot", pilot=sample, **scan)
    vals = {k: np.concatenate(v) if v else np.zeros(0, np.int32) for k, v in pilot.values.items()}
    seen = [v for v in (*vals.values(), *pilot.pos) if len(v)]
    binning = (Binning.covering(min(int(v.min()) for v in seen), max(int(v.max()) for v in seen)) if seen
               else Binning.covering(0, 2 * GRID))
    est = np.zeros(binning.size)
    for src, n_pop in (("query", n_qq), ("distractor", n_qd)):
        if len(vals[src]):
            est += np.bincount(binning.of(vals[src]), minlength=binning.size) * (n_pop / len(vals[src]))
    return binning, est, sum(len(v) for v in vals.values())


def _thresholds(scan: dict, stats: TileStats, hist_neg: np.ndarray, ranks: list[int], progress: bool,
                use_numpy: bool) -> tuple[np.ndarray, int]:
    """(threshold of each rank as ``u``, passes): a second pass keeps the bins the pilot missed."""
    binning = stats.binning
    kept = np.sort(np.concatenate(stats.kept)) if stats.kept else np.zeros(0, np.int32)
    found = {k: _select(hist_neg, kept, binning, k) for k in ranks}
    passes, missing = 1, {b for v, b in found.values() if v is None}
    if missing:
        keep = np.zeros(binning.size + 1, bool)
        keep[sorted(missing)] = True
        again = TileStats(binning, keep, use_numpy)
        scan_tiles(stats=again, progress=progress, desc="id-rate (2nd pass)", **scan)
        kept, passes = np.sort(np.concatenate(again.kept)), 2
        found = {k: (v if v is not None else _select(hist_neg, kept, binning, k)[0], b) for k, (v, b) in found.items()}
    return np.array([found[k][0] for k in ranks], np.int64), passes
