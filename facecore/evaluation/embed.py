"""Photos -> embeddings: detect -> align -> embed, batched, with an on-disk cache.

The same function serves the notebooks, evaluation and realtime.py's gallery. The cache holds one
small ``.npz`` per (model, detector name and settings, alignment settings, file contents), so a changed
photo, detector setting or a retrained model is recomputed and nothing else is. A damaged cache entry
(unreadable, truncated, a folder or other non-file in its place, another model's dimension, non-finite
values) is a miss: recomputed, with a one-line warning naming it. An entry that cannot be written (a
read-only cache) is a warning, never an error. Which entries a cache may delete: ``facecore.core.cache``.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..core.cache import claim, prune as prune_entries
from ..core.files import NO_FACE, OK, UNREADABLE, atomic_write_bytes, file_digest, load_rgb, regular_file
from ..core.runtime import progress_bar
from ..detection.align import template
from ..detection.detectors import detector_key, resolve_detector
from ..detection.faces import detect_align
from ..networks.models import Embedder


@dataclass
class EmbeddedFiles:
    """Embeddings of files, row i for ``paths[i]``; rows whose status is not ``ok`` are NaN."""

    paths: list[str]
    embeddings: np.ndarray
    status: list[str]
    n_faces: list[int]
    cache_keys: list[str | None] = field(default_factory=list)  # content digests (None: not cached)
    padded: list[bool] = field(default_factory=list)  # the face was found by the padded retry
    cache_tag: str | None = None  # the cache sub-folder of the entries (None: no cache)

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == OK for s in self.status], dtype=bool)


def model_key(embedder: Embedder) -> str:
    """A short digest of a model's weights and preprocessing, for cache keys (a teacher names its own)."""
    if getattr(embedder, "cache_key", None):
        return str(embedder.cache_key)
    h = hashlib.sha1()
    h.update(repr(sorted((k, v) for k, v in embedder.meta.items() if k in ("arch", "input_size", "align_size",
                                                                            "mean", "std", "embedding_dim"))).encode())
    for k, v in sorted(embedder.model.state_dict().items()):  # every byte: a float sum depends on the thread count
        h.update(k.encode())
        h.update(np.ascontiguousarray(v.detach().cpu().float().numpy()).tobytes())
    return h.hexdigest()[:16]


def file_key(path: str | os.PathLike) -> str:
    """The cache key of a photo: the SHA-1 of its bytes."""
    return file_digest(path, "sha1")


def cache_tag(embedder: Embedder, detector, aligned: bool, select: str, flip: bool) -> str:
    """The cache sub-folder of one (model, detector name + settings, selection, flip) combination."""
    how = "aligned" if aligned else f"{detector_key(detector)}-{select}"
    return f"{model_key(embedder)}-{how}-{int(flip)}"


def _read_entry(cp: Path, dim: int | None = None) -> tuple[str, int, np.ndarray] | None:
    """(status, n_faces, embedding) of a cache entry; None (with a one-line warning) when it is damaged:
    not a file, unreadable, an unknown status, or an embedding that is not ``dim`` (any if None) finite values."""
    why = "is not a file" if not cp.is_file() else None
    if why is None:
        try:
            with np.load(cp) as z:
                status, n_faces, emb = str(z["status"]), int(z["n_faces"]), np.asarray(z["emb"], np.float32)
        except Exception as e:  # noqa: BLE001 - any damage (BadZipFile, truncation, bad pickle) is a miss
            why = f"is unreadable ({type(e).__name__})"
        else:
            if status not in (OK, NO_FACE, UNREADABLE):
                why = f"is unreadable (status {status[:20]!r})"
            elif status == OK and (emb.shape != (dim or emb.size,) or not np.isfinite(emb).all()):
                why = (f"is of another model (dimension {emb.size}, not {dim})" if emb.shape != (dim or emb.size,)
                       else "holds non-finite values")
    if why is None:
        return status, n_faces, emb
    warnings.warn(f"embedding cache entry {cp} {why}; recomputing it", UserWarning, stacklevel=2)
    return None


def embed_files(paths: list[str | os.PathLike], embedder: Embedder, detector=None,
                cache_dir: str | os.PathLike | None = None, flip: bool = True, batch_size: int = 32,
                select: str = "center_largest", aligned: bool = False, progress: bool = True) -> EmbeddedFiles:
    """Embed the one selected face of each photo (detect -> align -> embed).

    ``detector``: a detector object, a registered name (``facecore.detection.detectors``) or None (MTCNN).
    ``aligned=True`` takes the files as already-aligned crops (e.g. ``align_folder`` output) and skips
    detection. With ``cache_dir``, embeddings are read from and written to the cache.
    """
    n = len(paths)
    out = EmbeddedFiles([str(p) for p in paths], np.full((n, int(embedder.meta.get("embedding_dim", 512))), np.nan, np.float32),
                        [""] * n, [0] * n, [None] * n, [False] * n)
    if not aligned:
        detector = resolve_detector(detector, embedder.device)
    if cache_dir:
        claim(cache_dir, "embeddings")  # marks a new cache folder with its key scheme (facecore.core.cache)
        out.cache_tag = cache_tag(embedder, detector, aligned, select, flip)
    cdir = Path(cache_dir) / out.cache_tag if cache_dir else None
    todo = _read_cached(out, cdir) if cdir is not None else list(range(n))
    writable = cdir is not None
    for start in progress_bar(range(0, len(todo), batch_size), desc="embed", unit="batch", disable=not progress or not todo):
        idx = todo[start:start + batch_size]
        crops = _crops(out, idx, embedder, detector, select, aligned)
        have = [j for j in range(len(idx)) if crops[j] is not None]
        if have:
            e = embedder.embed(np.stack([crops[j] for j in have]), flip=flip)
            for j, row in zip(have, e):
                out.embeddings[idx[j]], out.status[idx[j]] = row, OK
                out.n_faces[idx[j]] = max(out.n_faces[idx[j]], 1)
        if writable:
            writable = _write_cached(out, cdir, idx)
    return out


def _entry_path(cdir: Path, key: str) -> Path:
    return cdir / key[:2] / f"{key}.npz"


def _read_cached(out: EmbeddedFiles, cdir: Path) -> list[int]:
    """Fill ``out`` from the cache (keying every existing file by content); the rows still to embed."""
    todo = []
    for i, p in enumerate(out.paths):
        if os.path.exists(p):
            out.cache_keys[i] = file_key(p)
            cp = _entry_path(cdir, out.cache_keys[i])
            entry = _read_entry(cp, out.embeddings.shape[1]) if os.path.lexists(cp) else None
            if entry is not None:
                out.status[i], out.n_faces[i] = entry[0], entry[1]
                if entry[0] == OK:
                    out.embeddings[i] = entry[2]
                continue
        todo.append(i)
    return todo


def _crops(out: EmbeddedFiles, idx: list[int], embedder: Embedder, detector, select: str,
           aligned: bool) -> list[np.ndarray | None]:
    """The network input crop of each of rows ``idx`` (None: unreadable or no face; ``out`` says which)."""
    imgs = [load_rgb(out.paths[i]) for i in idx]
    good = [j for j, im in enumerate(imgs) if im.status == OK]
    crops: list[np.ndarray | None] = [None] * len(idx)
    for j, im in enumerate(imgs):
        out.status[idx[j]] = im.status if im.status != OK else NO_FACE
    if aligned:
        for j in good:
            crops[j] = aligned_input(embedder, imgs[j].rgb)
    elif good:
        faces = detect_align([imgs[j].rgb for j in good], detector, embedder.align_size, select)
        for j, f in zip(good, faces):
            if f:
                # a teacher cuts its own crop from the photo (its template, e.g. dlib's chip)
                crops[j] = (embedder.align(imgs[j].rgb, f[0].box, f[0].landmarks) if hasattr(embedder, "align")
                            else f[0].crop)
                out.n_faces[idx[j]], out.padded[idx[j]] = f[0].n_faces, f[0].padded
    return crops


def _write_cached(out: EmbeddedFiles, cdir: Path, idx: list[int]) -> bool:
    """Write the entries of rows ``idx``; False (after a one-line warning) when the cache cannot be written.
    An entry whose place holds a link, folder or other non-file is left alone (a damaged one was warned
    about when read)."""
    for i in idx:
        cp = _entry_path(cdir, out.cache_keys[i]) if out.cache_keys[i] else None
        if cp is None or (os.path.lexists(cp) and not regular_file(cp)):  # no file to key by, or not ours to replace
            continue
        buf = io.BytesIO()
        np.savez(buf, emb=out.embeddings[i], status=np.array(out.status[i]), n_faces=np.array(out.n_faces[i]))
        try:
            atomic_write_bytes(cp, buf.getvalue())
        except (OSError, ValueError) as e:
            warnings.warn(f"embedding cache {cdir.parent}: cannot write {cp} ({getattr(e, 'strerror', None) or e}); "
                          "embeddings are not cached", UserWarning, stacklevel=3)
            return False
    return True


def prune_cache(cache_dir: str | os.PathLike, scope: str, emb: EmbeddedFiles) -> list[Path]:
    """Delete the entries of the gallery cache ``cache_dir`` that no user of it still needs (``facecore.core.cache``:
    ``scope``, e.g. the gallery folder, now uses ``emb``'s entries). Returns the deleted paths."""
    if emb.cache_tag is None:
        return []
    return prune_entries(cache_dir, scope, emb.cache_tag, emb.cache_keys)


def aligned_input(embedder, rgb: np.ndarray) -> np.ndarray:
    """An aligned crop as ``embedder`` takes it. A teacher (it has ``align``) takes a crop of its own
    size as its own framing, and re-frames any other (an ArcFace-template crop, whose landmarks sit on
    the template) onto its template; a model takes the crop resized to its ``align_size``."""
    h, w = rgb.shape[:2]
    if getattr(embedder, "align", None) is None or (h, w) == (embedder.align_size, embedder.align_size):
        return _fit(rgb, embedder.align_size)

    return embedder.align(rgb, np.array([0.0, 0.0, w - 1.0, h - 1.0]), template(w))


def _fit(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb

    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
