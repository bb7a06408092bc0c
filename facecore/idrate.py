"""Identification rate (TPR@FPR) at scale: 10k queries x 1M distractors without holding the negatives.

Exactly ``facecore.metrics.id_rate`` (same thresholds, same TPR, bit for bit), computed in tiles:

1. Similarities are the canonical ones of ``facecore.metrics``: float64 cosine rounded to a multiple
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
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import fpr_rank, roc_from_histograms

GRID = 1 << 24              # similarity s is held as u = round(s * GRID) + GRID, in [0, 2 * GRID]
MAGIC = 1.5 * 2.0 ** 52     # x + MAGIC rounds x to an integer (ties to even) in the low bits
MAGIC_U = int(np.array(MAGIC).view(np.int64)) - GRID  # (x + MAGIC) as int64 - MAGIC_U = round(x) + GRID
SUB = 1 << 16               # elements per cache-sized block (numpy path)


@dataclass(frozen=True)
class Binning:
    """``bin(u) = clip(u >> shift, base, base + n + 1) - base``: 0 below, 1..n regular, n + 1 above."""

    base: int
    shift: int
    n: int

    @classmethod
    def covering(cls, u_min: int, u_max: int, target: int = 1 << 16) -> "Binning":
        """Bins over [u_min, u_max] plus a margin of 1/8 of the span on each side."""
        span = max(u_max - u_min, 1)
        lo, hi = max(u_min - span // 8, 0), min(u_max + span // 8 + 1, 2 * GRID)
        shift = max(0, math.ceil(math.log2((hi - lo + 1) / target)))
        return cls((lo >> shift) - 1, shift, (hi >> shift) - (lo >> shift) + 1)

    @property
    def size(self) -> int:
        return self.n + 2

    def of(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u)
        return np.clip(u >> self.shift, self.base, self.base + self.n + 1) - self.base

    def lower_edges(self) -> np.ndarray:
        """Similarity at the lower edge of each bin (bin b holds edges[b] <= s < edges[b + 1])."""
        e = (((np.arange(self.size) + self.base).astype(np.int64) << self.shift) - GRID) / GRID
        e[0] = -1.0
        return e


def _prepare(x, scale: float, dtype: torch.dtype, device: str, name: str, out: np.ndarray | None = None,
             rows: slice | np.ndarray | None = None) -> torch.Tensor:
    """Rows normalised in float64 (then scaled by a power of two: exact), as ``dtype`` on ``device``.

    ``out``: a reusable float64 buffer (saves page faults); ``rows``: where ``x`` came from, to name a
    bad row in the error.
    """
    x = np.asarray(x)
    t64 = np.array(x, dtype=np.float64) if out is None else out[:x.size].reshape(x.shape)
    if out is not None:
        np.copyto(t64, x)
    t = torch.from_numpy(t64)
    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    bad = ~torch.isfinite(norms) | (norms == 0)
    if bad.any():
        i = int(bad.view(-1).nonzero()[0])
        i = i if rows is None else (rows.start or 0) + i if isinstance(rows, slice) else int(rows[i])
        raise ValueError(f"{name} row {i} is zero or not finite; drop failed embeddings (EmbeddedFiles.ok) first")
    t.div_(norms)
    if scale != 1.0:
        t.mul_(scale)
    return t.to(dtype).to(device)


class _Stats:
    """One pass: per-bin counts of the negatives, kept values, positives (all as ``u``).

    Without a ``binning`` (the pilot) it keeps every negative value instead of counting.
    """

    def __init__(self, binning: Binning | None, keep: np.ndarray | None, use_numpy: bool):
        self.binning, self.keep, self.use_numpy = binning, keep, use_numpy
        size = binning.size + 1 if binning else 1
        self.hist = {"query": np.zeros(size, np.int64), "distractor": np.zeros(size, np.int64)}
        self.values: dict[str, list[np.ndarray]] = {"query": [], "distractor": []}
        self.kept: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []
        self._b, self._m, self._f = np.empty(SUB, np.int64), np.empty(SUB, bool), np.empty(SUB, np.float64)

    def add(self, s: torch.Tensor, source: str, exclude: torch.Tensor | None = None,
            positive: torch.Tensor | None = None) -> None:
        """``s``: a tile of similarities x GRID; ``exclude``: its pairs that are not negatives."""
        if not self.use_numpy:
            u = s.to(torch.float64).round_().to(torch.int64).add_(GRID)
            self._count(u.view(-1), None if exclude is None else exclude.view(-1),
                        None if positive is None else positive.view(-1), source, torch)
            return
        flat = s.numpy().reshape(-1)
        excl = None if exclude is None else exclude.numpy().reshape(-1)
        posm = None if positive is None else positive.numpy().reshape(-1)
        for o in range(0, len(flat), SUB):
            x = flat[o:o + SUB]
            if x.dtype != np.float64:
                x = self._f[:len(x)]
                np.copyto(x, flat[o:o + len(x)])
            x += MAGIC
            u = x.view(np.int64)
            u -= MAGIC_U
            self._count(u, None if excl is None else excl[o:o + len(u)], None if posm is None else posm[o:o + len(u)],
                        source, np)

    def _count(self, u, excl, posm, source: str, xp) -> None:
        """Shared numpy/torch body on a flat block ``u``."""
        host = (lambda a: a) if xp is np else (lambda a: a.cpu().numpy())
        if posm is not None and bool(posm.any()):
            self.pos.append(host(u[posm]).astype(np.int32))
        if self.binning is None:
            self.values[source].append(host(u if excl is None else u[~excl]).astype(np.int32))
            return
        bn = self.binning
        if xp is np:
            b = np.right_shift(u, bn.shift, out=self._b[:len(u)])
            np.clip(b, bn.base, bn.base + bn.n + 1, out=b)
            b -= bn.base
        else:
            b = torch.clamp(u >> bn.shift, bn.base, bn.base + bn.n + 1) - bn.base
        if excl is not None:
            b[excl] = bn.size  # the sentinel bin, never used
        if self.keep is not None:
            if xp is np:
                sel = np.flatnonzero(np.take(self.keep, b, out=self._m[:len(b)]))
            else:
                sel = torch.from_numpy(self.keep).to(b.device)[b].nonzero().view(-1)
            if len(sel):
                self.kept.append(host(u[sel]).astype(np.int32))
        lo, hi = int(b.min()), int(b.max())
        b -= lo
        counts = np.bincount(b, minlength=hi - lo + 1) if xp is np else host(torch.bincount(b))
        self.hist[source][lo:lo + len(counts)] += counts


def _scan(q: torch.Tensor, codes: np.ndarray, distractor_emb, stats: _Stats, dtype: torch.dtype, device: str,
          query_block: int, distractor_block: int, progress: bool, desc: str,
          pilot: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None) -> None:
    """One pass over the query-query tiles (i < j) and the query x distractor tiles.

    ``codes`` must be sorted, so that same-identity pairs only occur in tiles near the diagonal.
    ``pilot = (rows, query columns, distractor rows)``: only those rows against those queries
    (i != j, same-identity pairs counted as positives) and those distractors.
    """
    from tqdm.auto import tqdm

    n_q = len(q)
    qn = q / GRID  # unit rows: exact (power of two)
    lab = torch.from_numpy(codes).to(device)
    rows, cols, drows = pilot if pilot else (None, None, None)
    n_d = 0 if distractor_emb is None else len(distractor_emb) if drows is None else len(drows)
    starts = (lambda i0: range(i0, n_q, distractor_block)) if pilot is None else (lambda i0: range(0, len(cols), distractor_block))
    qq_tiles = [(i0, c0) for i0 in range(0, n_q if pilot is None else len(rows), query_block) for c0 in starts(i0)]
    d_chunks = list(range(0, n_d, distractor_block))
    bar = tqdm(total=len(qq_tiles) + len(d_chunks), desc=desc, unit="tile", disable=not progress)
    buf, dbuf = None, np.empty(distractor_block * q.shape[1], np.float64)

    def product(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
        nonlocal buf
        n = a.shape[0] * b_t.shape[1]
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=q.dtype, device=device)
        return torch.mm(a, b_t, out=buf[:n].view(a.shape[0], b_t.shape[1]))

    try:
        for i0, c0 in qq_tiles:
            if pilot is None:
                r = torch.arange(i0, min(i0 + query_block, n_q), device=device)
                c = torch.arange(c0, min(c0 + distractor_block, n_q), device=device)
                s = product(q[i0:i0 + query_block], qn[c0:c0 + distractor_block].T)
                if c0 > int(r[-1]) and codes[int(r[-1])] < codes[c0]:  # above the diagonal, no shared identity
                    stats.add(s, "query")
                    bar.update(1)
                    continue
                keep = c[None, :] > r[:, None]
            else:
                r = torch.from_numpy(rows[i0:i0 + query_block]).to(device)
                c = torch.from_numpy(cols[c0:c0 + distractor_block]).to(device)
                s = product(q[r], qn[c].T)
                keep = c[None, :] != r[:, None]
            same = lab[r][:, None] == lab[c][None, :]
            stats.add(s, "query", exclude=~keep | same, positive=keep & same)
            bar.update(1)
        qr_all = q if pilot is None else q[torch.from_numpy(rows).to(device)]
        for j0 in d_chunks:
            idx = slice(j0, j0 + distractor_block) if drows is None else drows[j0:j0 + distractor_block]
            d = _prepare(distractor_emb[idx], 1.0, dtype, device, "distractor_emb", dbuf, idx)
            for i0 in range(0, len(qr_all), query_block):
                stats.add(product(qr_all[i0:i0 + query_block], d.T), "distractor")
            bar.update(1)
    finally:
        bar.close()


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
    """``facecore.metrics.id_rate`` without holding the negatives: also ROC points and ROC-AUC.

    ``distractor_emb`` may be any array-like read by row slices (e.g. ``np.load(..., mmap_mode='r')``).
    ``backend``: how tiles are counted, ``numpy`` (CPU default, cache-sized blocks) or ``torch``
    (GPU default). ``pilot_pairs``/``window_sigmas`` trade memory for the risk of a second pass; the
    result does not depend on them. Returns the keys of ``id_rate`` plus ``auc``, ``auc_max_error``,
    ``roc_fpr``/``roc_tpr``/``roc_thresholds`` (bin edges, rule ``s >= threshold``), per-bin counts
    ``hist_pos``, ``hist_query_neg``, ``hist_distractor_neg`` over ``bin_lower`` edges, ``passes``
    and ``seconds``.
    """
    t0 = time.perf_counter()
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
        q = _prepare(np.asarray(query_emb)[order], float(GRID), dtype, device, "query_emb")
        blocks = dict(dtype=dtype, device=device, query_block=query_block, distractor_block=distractor_block)
        # pilot: random query rows (thousands) x random queries and distractors, ~5% of the work at most
        rng = np.random.default_rng(seed)
        pilot_pairs = min(pilot_pairs, max(n_neg // 20, 100_000))
        n_rows = min(n_q, max(256, pilot_pairs // 2000))
        n_cols = max(pilot_pairs // n_rows, 1)
        sample = (np.sort(rng.choice(n_q, n_rows, replace=False)), np.sort(rng.choice(n_q, min(n_q, n_cols), replace=False)),
                  np.sort(rng.choice(n_d, min(n_d, n_cols), replace=False)) if n_d else None)
        pilot = _Stats(None, None, use_numpy)
        _scan(q, codes, distractor_emb, pilot, progress=False, desc="pilot", pilot=sample, **blocks)
        vals = {k: np.concatenate(v) if v else np.zeros(0, np.int32) for k, v in pilot.values.items()}
        seen = [v for v in (*vals.values(), *pilot.pos) if len(v)]
        binning = (Binning.covering(min(int(v.min()) for v in seen), max(int(v.max()) for v in seen)) if seen
                   else Binning.covering(0, 2 * GRID))
        est = np.zeros(binning.size)
        for src, n_pop in (("query", n_qq), ("distractor", n_q * n_d)):
            if len(vals[src]):
                est += np.bincount(binning.of(vals[src]), minlength=binning.size) * (n_pop / len(vals[src]))
        n_pilot = sum(len(v) for v in vals.values())
        del pilot, vals, seen
        stats = _Stats(binning, _keep_bins(est, ranks, n_neg, n_pilot, window_sigmas), use_numpy)
        _scan(q, codes, distractor_emb, stats, progress=progress, desc="id-rate", **blocks)
        hist_neg = (stats.hist["query"] + stats.hist["distractor"])[:binning.size]
        kept = np.sort(np.concatenate(stats.kept)) if stats.kept else np.zeros(0, np.int32)
        found = {k: _select(hist_neg, kept, binning, k) for k in ranks}
        passes, missing = 1, {b for v, b in found.values() if v is None}
        if missing:
            keep = np.zeros(binning.size + 1, bool)
            keep[sorted(missing)] = True
            again = _Stats(binning, keep, use_numpy)
            _scan(q, codes, distractor_emb, again, progress=progress, desc="id-rate (2nd pass)", **blocks)
            kept, passes = np.sort(np.concatenate(again.kept)), 2
            found = {k: (v if v is not None else _select(hist_neg, kept, binning, k)[0], b) for k, (v, b) in found.items()}
    finally:
        torch.set_float32_matmul_precision(prec[0])
        torch.backends.cuda.matmul.allow_tf32 = prec[1]
    pos_u = np.concatenate(stats.pos)
    thr_u = np.array([found[k][0] for k in ranks], np.int64)
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
