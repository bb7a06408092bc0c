"""The tile engine of ``facecore.evaluation.idrate``: similarities on an integer grid, binned and counted tile by
tile over (query, query) and (query, distractor) pairs without holding them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.runtime import progress_bar

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


def prepare_rows(x, scale: float, dtype: torch.dtype, device: str, name: str, out: np.ndarray | None = None,
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


class TileStats:
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


def scan_tiles(q: torch.Tensor, codes: np.ndarray, distractor_emb, stats: TileStats, dtype: torch.dtype, device: str,
               query_block: int, distractor_block: int, progress: bool, desc: str,
               pilot: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None) -> None:
    """One pass over the query-query tiles (i < j) and the query x distractor tiles.

    ``codes`` must be sorted, so that same-identity pairs only occur in tiles near the diagonal.
    ``pilot = (rows, query columns, distractor rows)``: only those rows against those queries
    (i != j, same-identity pairs counted as positives) and those distractors.
    """
    n_q = len(q)
    qn = q / GRID  # unit rows: exact (power of two)
    lab = torch.from_numpy(codes).to(device)
    rows, cols, drows = pilot if pilot else (None, None, None)
    n_d = 0 if distractor_emb is None else len(distractor_emb) if drows is None else len(drows)
    starts = (lambda i0: range(i0, n_q, distractor_block)) if pilot is None else (lambda i0: range(0, len(cols), distractor_block))
    qq_tiles = [(i0, c0) for i0 in range(0, n_q if pilot is None else len(rows), query_block) for c0 in starts(i0)]
    d_chunks = list(range(0, n_d, distractor_block))
    bar = progress_bar(total=len(qq_tiles) + len(d_chunks), desc=desc, unit="tile", disable=not progress)
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
            d = prepare_rows(distractor_emb[idx], 1.0, dtype, device, "distractor_emb", dbuf, idx)
            for i0 in range(0, len(qr_all), query_block):
                stats.add(product(qr_all[i0:i0 + query_block], d.T), "distractor")
            bar.update(1)
    finally:
        bar.close()
