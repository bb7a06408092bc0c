"""Verification and identification metrics: pure numpy, no I/O, no plots.

Similarities are cosine similarities of L2-normalised embeddings, computed in float64 and rounded
once to the nearest multiple of 2**-24 (``SIM_GRID``, exact in float32; ``cosine_matrix``). Float64
sums differ between implementations (BLAS, chunking, CPU/CUDA) by ~1e-16; snapping to a grid 1e8
times coarser makes them bit-identical (except with probability ~1e-9 per pair), so
``facecore.evaluation.idrate`` is checked against these brute-force functions for exact equality.
"""
from __future__ import annotations

import itertools

import numpy as np

SIM_GRID = 2.0 ** -24  # similarities are multiples of this (float32 resolution at 0.5..1)


# ----------------------------------------------------------------------------- similarities
def normalize_rows(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    """Float64 copy with unit rows; a zero, NaN or infinite row raises naming ``name`` and the row."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        raise ValueError(f"{name} row {int(np.flatnonzero(bad)[0])} is zero or not finite "
                         f"({int(bad.sum())} such rows); drop failed embeddings (EmbeddedFiles.ok) first")
    return x / norms[:, None]


def snap(s: np.ndarray) -> np.ndarray:
    """Float64 similarities rounded to the nearest multiple of ``SIM_GRID`` (ties to even), as float32."""
    return (np.round(np.asarray(s, np.float64) / SIM_GRID) * SIM_GRID).astype(np.float32)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) float32 cosine similarities (float64 arithmetic, ``snap``-ped)."""
    return snap(normalize_rows(a, "a") @ normalize_rows(b, "b").T)


def query_pair_similarities(query_emb: np.ndarray, query_labels, distractor_emb: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brute force: (positive, query-query negative, query-distractor negative) similarities.

    Positives are the pairs i < j of query images of one identity, query negatives the pairs i < j of
    different identities; every (query, distractor) pair is a distractor negative.
    """
    labels = np.asarray(query_labels)
    if len(labels) != len(query_emb):
        raise ValueError(f"query_labels has {len(labels)} entries for {len(query_emb)} query embeddings")
    s = cosine_matrix(query_emb, query_emb)
    iu, ju = np.triu_indices(len(labels), k=1)
    same = labels[iu] == labels[ju]
    pos, neg_q = s[iu[same], ju[same]], s[iu[~same], ju[~same]]
    neg_d = (cosine_matrix(query_emb, distractor_emb).ravel() if distractor_emb is not None and len(distractor_emb)
             else np.zeros(0, np.float32))
    return pos, neg_q, neg_d


# ----------------------------------------------------------------------------- TPR @ FPR
def fpr_rank(fpr: float, n_negatives: int) -> int:
    """0-based index ``int(fpr * n)`` of the threshold among negatives sorted descending (clipped to n-1)."""
    if not 0 <= fpr <= 1:
        raise ValueError(f"FPR must be in [0, 1], got {fpr}")
    if n_negatives < 1:
        raise ValueError("no negative pairs: need at least two identities or a distractor")
    return min(int(fpr * n_negatives), n_negatives - 1)


def threshold_at_fpr(neg_similarities: np.ndarray, fpr: float) -> float:
    """The negative similarity at index ``int(fpr * n)`` in descending order.

    At most a share ``fpr`` of the negatives lies strictly above it, so ``similarity > threshold``
    accepts at most that share of impostor pairs (e.g. on LFW's mismatched pairs).
    """
    neg = np.asarray(neg_similarities).ravel()
    k = fpr_rank(fpr, len(neg))
    return float(np.partition(neg, len(neg) - 1 - k)[len(neg) - 1 - k])


def accept_rate(similarities: np.ndarray, threshold: float) -> float:
    """Share of the similarities strictly above ``threshold``: what ``similarity > threshold`` accepts."""
    s = np.asarray(similarities).ravel()
    if len(s) == 0:
        raise ValueError("accept_rate needs at least one similarity")
    return float(np.count_nonzero(s > threshold) / len(s))


def realised_fpr(neg_similarities: np.ndarray, threshold: float) -> float:
    """The false-positive rate a threshold gives on a set of negatives (different-identity pairs): the
    share strictly above it, the rule of ``threshold_at_fpr``, which keeps it at most ``fpr`` on the
    negatives it was taken from and says nothing of others."""
    neg = np.asarray(neg_similarities).ravel()
    if len(neg) == 0:
        raise ValueError("no negative pairs: need at least two identities")
    return accept_rate(neg, threshold)


def id_rate_from_similarities(pos: np.ndarray, neg: np.ndarray, fprs) -> dict:
    """Thresholds at each FPR (``threshold_at_fpr``) and TPR = share of positives strictly above."""
    pos, neg = np.asarray(pos).ravel(), np.asarray(neg).ravel()
    if len(pos) == 0:
        raise ValueError("no positive pairs: the query set needs an identity with at least two images")
    desc = -np.sort(-neg)
    thr = np.array([float(desc[fpr_rank(f, len(neg))]) for f in fprs])
    tpr = np.array([float(np.mean(pos > t)) for t in thr])
    return {"fprs": np.asarray(fprs, dtype=np.float64), "thresholds": thr, "tprs": tpr,
            "n_positives": len(pos), "n_negatives": len(neg)}


def id_rate(query_emb: np.ndarray, query_labels, distractor_emb: np.ndarray | None, fprs) -> dict:
    """Identification rate TPR@FPR (Deep Learning School face-recognition definition), brute force.

    Negatives are the different-identity query pairs plus every (query, distractor) pair; for each
    FPR the threshold is the negative at index ``int(FPR * n_negatives)`` sorted descending and the
    TPR is the share of same-identity query pairs strictly above it. Holds every similarity in
    memory: use ``facecore.evaluation.idrate.id_rate_streaming`` for large sets.
    """
    pos, neg_q, neg_d = query_pair_similarities(query_emb, query_labels, distractor_emb)
    return id_rate_from_similarities(pos, np.concatenate([neg_q, neg_d]), fprs)


# ----------------------------------------------------------------------------- ROC
def roc_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for the rule ``similarity >= threshold`` at every distinct score.

    Starts at (0, 0) with threshold +inf and ends at (1, 1).
    """
    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], is_pos[order]
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    fpr = np.r_[0.0, fp / max(len(neg), 1)]
    tpr = np.r_[0.0, tp / max(len(pos), 1)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(positive > negative) + P(equal) / 2: the Mann-Whitney statistic (ties count one half)."""
    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("roc_auc needs at least one positive and one negative score")
    values, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    rank_sum = avg_rank[inverse[: len(pos)]].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def roc_from_histograms(hist_pos: np.ndarray, hist_neg: np.ndarray, edges: np.ndarray,
                        single_valued: bool = False) -> dict:
    """ROC points at histogram bin edges (exact) and ROC-AUC with same-bin pairs counted as ties.

    ``hist_pos``/``hist_neg`` count scores per bin, ``edges`` are the bins' lower edges (ascending).

    ``single_valued``: the regular bins each hold one similarity value, so only the first and last
    bin can hold pairs that are not real ties.
    """
    p, n = float(hist_pos.sum()), float(hist_neg.sum())
    pos_ge, neg_ge = np.cumsum(hist_pos[::-1])[::-1], np.cumsum(hist_neg[::-1])[::-1]
    both = hist_pos * hist_neg.astype(np.float64)
    if single_valued:
        both[1:-1] = 0
    nz = np.flatnonzero((hist_pos + hist_neg) > 0)
    return {"auc": float((hist_pos * ((n - neg_ge) + 0.5 * hist_neg)).sum() / (p * n)),
            "auc_max_error": float(0.5 * both.sum() / (p * n)),
            "roc_fpr": np.r_[0.0, neg_ge[nz][::-1] / n], "roc_tpr": np.r_[0.0, pos_ge[nz][::-1] / p],
            "roc_thresholds": np.r_[np.inf, edges[nz][::-1]]}


# ----------------------------------------------------------------------------- LFW accuracy
def best_threshold(similarities: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising the accuracy of ``similarity > threshold`` -> same.

    Searches every candidate exactly: the midpoints between consecutive distinct similarities and
    -inf/+inf. Among equally good thresholds the lowest wins.
    """
    s = np.asarray(similarities, np.float64).ravel()
    y = np.asarray(issame, bool).ravel()
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    uniq, start = np.unique(s, return_index=True)
    below = np.r_[start, len(s)]  # candidate u: the first below[u] sorted scores are predicted different
    pos_below = np.r_[0, np.cumsum(y)][below]
    correct = (below - pos_below) + (y.sum() - pos_below)
    u = int(np.argmax(correct))
    cands = np.r_[-np.inf, (uniq[:-1] + uniq[1:]) / 2.0, np.inf]
    return float(cands[u]), float(correct[u] / len(s))


def lfw_accuracy(similarities: np.ndarray, issame: np.ndarray, folds: np.ndarray | None = None,
                 n_folds: int = 10) -> dict:
    """LFW's 10-fold protocol: per fold, the threshold best on the other folds, scored on this one.

    ``folds`` gives each pair's fold (from ``facecore.evaluation.lfw.pair_rows``); without it the pairs are cut
    into ``n_folds`` contiguous blocks, as ``pairs.txt`` orders them. Returns mean and std (ddof=0)
    of the fold accuracies, the per-fold ``accuracies`` and ``thresholds``, and ``threshold`` (their
    mean) for use as a default verification threshold.
    """
    s = np.asarray(similarities, np.float64).ravel()
    y = np.asarray(issame, bool).ravel()
    if len(s) != len(y):
        raise ValueError(f"similarities ({len(s)}) and issame ({len(y)}) differ in length")
    if not np.isfinite(s).all():
        raise ValueError("similarities contain NaN/inf: drop pairs whose images failed to embed first")
    folds = (np.arange(len(s)) * n_folds) // max(len(s), 1) if folds is None else np.asarray(folds).ravel()
    ids = np.unique(folds)
    if len(ids) < 2:
        raise ValueError("lfw_accuracy needs at least two folds")
    accs, thrs = [], []
    for f in ids:
        test = folds == f
        thr, _ = best_threshold(s[~test], y[~test])
        accs.append(float(np.mean((s[test] > thr) == y[test])))
        thrs.append(thr)
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "accuracies": accs,
            "thresholds": thrs, "threshold": float(np.mean(thrs))}


def verification(similarities: np.ndarray, issame: np.ndarray, folds: np.ndarray | None = None,
                 fprs=()) -> dict:
    """A pair-verification benchmark's figures (LFW, CFP-FF, CFP-FP): ``lfw_accuracy``'s 10-fold
    accuracy, the threshold at each FPR of the different-identity pairs (``threshold_at_fpr``) and
    the ROC-AUC of same vs different pairs."""
    s = np.asarray(similarities, np.float64).ravel()
    y = np.asarray(issame, bool).ravel()
    out = lfw_accuracy(s, y, folds=folds)
    out["thresholds_by_fpr"] = {str(f): threshold_at_fpr(s[~y], f) for f in fprs}
    out["auc"] = roc_auc(s[y], s[~y])
    return out


def paired_difference(a, b) -> dict:
    """Fold-paired comparison of two models' per-fold accuracies (same folds): the mean of ``a - b``,
    its standard error (sample std of the differences / sqrt(folds)), and in how many folds ``a`` won."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two equal-length per-fold accuracy lists (>= 2 folds), got {a.shape} and {b.shape}")
    d = a - b
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "folds_better": int((d > 0).sum()),
            "folds": int(len(d))}


def positive_pairs(labels) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j), i < j, of the pairs with equal labels, in ``np.triu_indices`` order: the
    positives of ``query_pair_similarities``, found per label instead of over all pairs."""
    labels = np.asarray(labels)
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0, True])
    ii, jj = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start, stop in itertools.pairwise(bounds):
        members = order[start:stop]  # ascending: the sort is stable
        a, b = np.triu_indices(len(members), k=1)
        ii.append(members[a])
        jj.append(members[b])
    i, j = np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
    o = np.lexsort((j, i))
    return i[o], j[o]


def paired_acceptance(accept_a, accept_b, groups=None, n_boot: int = 2000, seed: int = 0) -> dict:
    """Two models' decisions on the same positive pairs, each at its own threshold: ``delta`` = TPR(a) - TPR(b),
    McNemar's discordant counts (``gained``: pairs only a accepts, ``lost``: only b), and the ``se`` and
    95 % ``ci`` of ``delta`` over ``n_boot`` bootstrap resamples of whole ``groups`` (e.g. identities,
    whose pairs share photos; default: each pair its own group), thresholds held fixed."""
    a, b = np.asarray(accept_a, bool).ravel(), np.asarray(accept_b, bool).ravel()
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"need two equal-length, non-empty acceptance arrays, got {a.shape} and {b.shape}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    d = a.astype(np.int64) - b.astype(np.int64)
    rng = np.random.default_rng(seed)
    if groups is None:  # resampling single pairs: only the discordant counts matter (multinomial)
        p = np.array([(d > 0).sum(), (d < 0).sum(), (d == 0).sum()]) / len(d)
        draws = rng.multinomial(len(d), p, size=n_boot)
        boot = (draws[:, 0] - draws[:, 1]) / len(d)
    else:
        codes = np.unique(np.asarray(groups).ravel(), return_inverse=True)[1].reshape(-1)
        if len(codes) != len(d):
            raise ValueError(f"groups has {len(codes)} entries for {len(d)} pairs")
        g_sum, g_n = np.bincount(codes, weights=d), np.bincount(codes).astype(np.float64)
        chunk = max(1, 2_000_000 // len(g_n))
        parts = []
        for k in range(0, n_boot, chunk):  # chunks of replicates: at most ~2M group draws in memory
            idx = rng.integers(0, len(g_n), (min(chunk, n_boot - k), len(g_n)))
            parts.append(g_sum[idx].sum(1) / g_n[idx].sum(1))
        boot = np.concatenate(parts)
    return {"delta": float(d.mean()), "gained": int((d > 0).sum()), "lost": int((d < 0).sum()), "n": len(d),
            "se": float(boot.std(ddof=1)),
            "ci": (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))}


def embedding_spread(emb: np.ndarray) -> float:
    """1 - |mean embedding|: 0 when all unit embeddings coincide, near 1 when they spread out."""
    if len(emb) == 0:
        return float("nan")
    return float(1.0 - np.linalg.norm(np.asarray(emb, np.float64).mean(0)))
