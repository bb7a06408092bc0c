"""LFW's verification protocol: read ``pairs.txt`` and map its pairs to rows of an embedding array.

``pairs.txt`` starts with ``<folds> <pairs per fold>`` (``10 300``), then per fold that many matched
lines ``name i j`` and as many mismatched lines ``name1 i name2 j`` (tab or space separated). Image
``i`` of ``name`` is ``<name>/<name>_<iiii>.<ext>`` below the image root (``.jpg`` for LFW and for the
aligned crops of ``facecore.detection.folder.align_folder``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.paths import data_path


@dataclass(frozen=True)
class LfwPair:
    """One pair of ``pairs.txt``: two image paths relative to the image root."""

    path1: str
    path2: str
    issame: bool
    fold: int


def image_name(name: str, number: int | str, ext: str = "jpg") -> str:
    """``<name>/<name>_<NNNN>.<ext>``, the relative path of LFW image ``number`` of ``name``."""
    return f"{name}/{name}_{int(number):04d}.{ext.lstrip('.')}"


def read_pairs(pairs_file: str | os.PathLike, ext: str = "jpg") -> list[LfwPair]:
    """All pairs of an LFW ``pairs.txt``, in file order, with their 0-based fold."""
    pairs_file = Path(pairs_file)
    if not pairs_file.exists():
        raise FileNotFoundError(f"LFW pairs file {pairs_file} not found (it ships with LFW as pairs.txt)")
    lines = [ln.split() for ln in pairs_file.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not all(t.isdigit() for t in lines[0]) or len(lines[0]) not in (1, 2):
        raise ValueError(f"{pairs_file}: first line must be '<folds> <pairs per fold>' (e.g. '10 300')")
    n_folds, per_fold = (1, int(lines[0][0])) if len(lines[0]) == 1 else map(int, lines[0])
    body = lines[1:]
    if len(body) != 2 * n_folds * per_fold:
        raise ValueError(f"{pairs_file}: header says {n_folds} folds x 2 x {per_fold} pairs = "
                         f"{2 * n_folds * per_fold} lines, found {len(body)}")
    pairs = []
    for k, tokens in enumerate(body):
        fold, within = divmod(k, 2 * per_fold)
        matched = within < per_fold
        lineno = k + 2
        if matched and len(tokens) == 3:
            name, i, j = tokens
            pairs.append(LfwPair(image_name(name, i, ext), image_name(name, j, ext), True, fold))
        elif not matched and len(tokens) == 4:
            n1, i, n2, j = tokens
            pairs.append(LfwPair(image_name(n1, i, ext), image_name(n2, j, ext), False, fold))
        else:
            want = "'name i j' (matched)" if matched else "'name1 i name2 j' (mismatched)"
            raise ValueError(f"{pairs_file}, line {lineno}: expected {want}, got {' '.join(tokens)!r}")
    return pairs


def pair_paths(pairs: list[LfwPair]) -> list[str]:
    """The distinct relative image paths the pairs use, sorted: what to embed."""
    return sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})


def _key(path: str | os.PathLike) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.stem}"  # identity folder + file stem: independent of root and extension


def pair_rows(pairs: list[LfwPair], paths: list[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``(i1, i2)`` of each pair in an embedding array whose row r embeds ``paths[r]``.

    Paths match on ``<identity>/<stem>``, so absolute paths, other roots and other extensions (aligned
    crops) all work. Returns ``i1, i2, issame, fold``; a pair with an image missing from ``paths`` gets
    row -1 (drop it with ``(i1 >= 0) & (i2 >= 0)``).
    """
    index = {_key(p): r for r, p in enumerate(paths)}
    i1 = np.array([index.get(_key(p.path1), -1) for p in pairs], dtype=np.int64)
    i2 = np.array([index.get(_key(p.path2), -1) for p in pairs], dtype=np.int64)
    issame = np.array([p.issame for p in pairs], dtype=bool)
    fold = np.array([p.fold for p in pairs], dtype=np.int64)
    return i1, i2, issame, fold


def pair_similarities(embeddings: np.ndarray, i1: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair of rows (NaN where a row is -1 or not finite)."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
    ok = (i1 >= 0) & (i2 >= 0)
    out = np.full(len(i1), np.nan)
    out[ok] = np.einsum("ij,ij->i", e[i1[ok]], e[i2[ok]])
    return out


@lru_cache(maxsize=4)
def lfw_protocol(lfw_dir: str, pairs_path: str | None = None):
    """Files of aligned LFW crops that ``pairs.txt`` uses, and ``(i1, i2, issame, fold)`` rows into them."""
    pairs = read_pairs(pairs_path or data_path("lfw", "pairs.txt"), ext="jpg")
    files = [str(Path(lfw_dir) / p) for p in pair_paths(pairs)]
    return files, pair_rows(pairs, files)
