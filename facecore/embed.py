"""Photos -> embeddings: detect -> align -> embed, batched, with an on-disk cache.

The same function serves the notebooks, evaluation and realtime.py's gallery. The cache holds one
small ``.npy`` per (model, alignment settings, file contents), so a changed photo or a retrained
model is recomputed and nothing else is.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .faces import detect_align
from .files import NO_FACE, OK, atomic_write_bytes, load_rgb
from .models import Embedder


@dataclass
class EmbeddedFiles:
    """Embeddings of files, row i for ``paths[i]``; rows whose status is not ``ok`` are NaN."""

    paths: list[str]
    embeddings: np.ndarray
    status: list[str]
    n_faces: list[int]

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == OK for s in self.status], dtype=bool)


def model_key(embedder: Embedder) -> str:
    """A short digest of a model's weights and preprocessing, for cache keys."""
    h = hashlib.sha1()
    h.update(repr(sorted((k, v) for k, v in embedder.meta.items() if k in ("arch", "input_size", "align_size",
                                                                            "mean", "std", "embedding_dim"))).encode())
    for k, v in sorted(embedder.model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes()[:4096])
        h.update(str(float(v.float().sum())).encode())
    return h.hexdigest()[:16]


def file_key(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embed_files(paths: list[str | os.PathLike], embedder: Embedder, detector=None,
                cache_dir: str | os.PathLike | None = None, flip: bool = True, batch_size: int = 32,
                select: str = "center_largest", aligned: bool = False, progress: bool = True) -> EmbeddedFiles:
    """Embed the one selected face of each photo (detect -> align -> embed).

    ``aligned=True`` takes the files as already-aligned crops (e.g. ``align_folder`` output) and skips
    detection. With ``cache_dir``, embeddings are read from and written to the cache.
    """
    from tqdm.auto import tqdm

    from .detect import FaceDetector

    paths = [str(p) for p in paths]
    dim = int(embedder.meta.get("embedding_dim", 512))
    emb = np.full((len(paths), dim), np.nan, np.float32)
    status = [""] * len(paths)
    n_faces = [0] * len(paths)
    tag = f"{model_key(embedder)}-{'a' if aligned else select}-{int(flip)}"
    cdir = Path(cache_dir) / tag if cache_dir else None
    keys: list[str | None] = [None] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        if cdir is not None and os.path.exists(p):
            keys[i] = file_key(p)
            cp = cdir / keys[i][:2] / f"{keys[i]}.npz"
            if cp.exists():
                z = np.load(cp)
                status[i], n_faces[i] = str(z["status"]), int(z["n_faces"])
                if status[i] == OK:
                    emb[i] = z["emb"]
                continue
        todo.append(i)
    if todo and not aligned and detector is None:
        detector = FaceDetector(device=embedder.device)
    for start in tqdm(range(0, len(todo), batch_size), desc="embed", unit="batch", disable=not progress or not todo):
        idx = todo[start:start + batch_size]
        imgs = [load_rgb(paths[i]) for i in idx]
        good = [j for j, im in enumerate(imgs) if im.status == OK]
        crops: list[np.ndarray | None] = [None] * len(idx)
        for j, im in enumerate(imgs):
            status[idx[j]] = im.status if im.status != OK else NO_FACE
        if aligned:
            for j in good:
                crops[j] = _fit(imgs[j].rgb, embedder.align_size)
        elif good:
            faces = detect_align([imgs[j].rgb for j in good], detector, embedder.align_size, select)
            for j, f in zip(good, faces):
                if f:
                    crops[j] = f[0].crop
                    n_faces[idx[j]] = f[0].n_faces
        have = [j for j in range(len(idx)) if crops[j] is not None]
        if have:
            e = embedder.embed(np.stack([crops[j] for j in have]), flip=flip)
            for j, row in zip(have, e):
                emb[idx[j]] = row
                status[idx[j]] = OK
                n_faces[idx[j]] = max(n_faces[idx[j]], 1)
        if cdir is not None:
            for j, i in enumerate(idx):
                if keys[i] is None:  # the file did not exist: nothing to key the cache by
                    continue
                buf = io.BytesIO()
                np.savez(buf, emb=emb[i], status=np.array(status[i]), n_faces=np.array(n_faces[i]))
                atomic_write_bytes(cdir / keys[i][:2] / f"{keys[i]}.npz", buf.getvalue())
    return EmbeddedFiles(paths, emb, status, n_faces)


def _fit(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    import cv2

    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
