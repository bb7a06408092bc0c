"""Training data over an aligned ``<identity>/<image>`` folder: filtering, splitting, a uint8 cache,
batch augmentation and the P x K identity sampler for triplet training."""
from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..core.files import atomic_write_bytes, list_images, regular_file
from ..core.preprocessing import to_tensor as _to_tensor
from ..core.runtime import progress_bar


@dataclass
class FaceSet:
    """Image paths (relative to ``root``) with integer labels and the identity names they index."""

    root: Path
    paths: list[str]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: np.ndarray | list[int]) -> "FaceSet":
        idx = np.asarray(idx, dtype=np.int64)
        return FaceSet(self.root, [self.paths[i] for i in idx], self.labels[idx], self.classes)


def scan_identities(root: str | os.PathLike, min_images: int = 1, max_identities: int | None = None) -> FaceSet:
    """All images below ``root/<identity>/``; identities with fewer than ``min_images`` are dropped.

    ``max_identities`` keeps the identities with the most images (ties by name), for small runs.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training folder {root} not found: align the data set first "
                                f"(notebooks/face-detection-and-alignment.ipynb)")
    by_id: dict[str, list[str]] = {}
    for p in list_images(root):
        parts = p.split("/")
        if len(parts) >= 2:
            by_id.setdefault(parts[0], []).append(p)
    if not by_id:
        raise ValueError(f"no images in {root}: expected <identity>/<image> files (an aligned folder from "
                         f"notebooks/face-detection-and-alignment.ipynb)")
    kept = sorted((k for k, v in by_id.items() if len(v) >= min_images), key=lambda k: (-len(by_id[k]), k))
    if max_identities:
        kept = kept[:max_identities]
    if not kept:
        raise ValueError(f"no identity in {root} has >= {min_images} images")
    classes = sorted(kept)
    paths, labels = [], []
    for c, name in enumerate(classes):
        paths += by_id[name]
        labels += [c] * len(by_id[name])
    return FaceSet(root, paths, np.asarray(labels, np.int64), classes)


def split_per_identity(fs: FaceSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """Per identity, ``val_fraction`` of its images (at least one when it has >= 2) go to validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(len(fs.classes)):
        idx = np.nonzero(fs.labels == c)[0]
        rng.shuffle(idx)
        n_val = min(len(idx) - 1, max(1, round(val_fraction * len(idx)))) if len(idx) >= 2 else 0
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return fs.subset(sorted(train)), fs.subset(sorted(val))


def load_crops(fs: FaceSet, size: int, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> np.ndarray:
    """All images of ``fs`` decoded once to a (N, size, size, 3) uint8 array, cached as ``.npy``.

    Two CPU cores should not spend every epoch decoding JPEGs; the cache is keyed by the files' paths,
    sizes and modification times (``crops_key``), so changed crops are decoded again.
    """

    key = crops_key(fs, size)
    cache = Path(cache_dir) / f"crops-{size}-{key}.npy" if cache_dir else None
    if cache is not None and os.path.lexists(cache):
        cached = _read_crops(cache, (len(fs), size, size, 3))
        if cached is not None:
            return cached

    def decode(p: str) -> np.ndarray:
        img = cv2.imread(str(fs.root / p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode training image {fs.root / p}; re-run the alignment stage")
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return img[..., ::-1]

    out = np.zeros((len(fs), size, size, 3), np.uint8)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # OpenCV decodes without the GIL
        for i, img in enumerate(progress_bar(pool.map(decode, fs.paths), total=len(fs.paths),
                                     desc="decode crops", unit="img", disable=not progress)):
            out[i] = img
    if cache is not None and (regular_file(cache) or not os.path.lexists(cache)):  # a folder or link there: left alone
        buf = io.BytesIO()
        np.save(buf, out)
        try:
            atomic_write_bytes(cache, buf.getvalue())
        except (OSError, ValueError) as e:
            warnings.warn(f"crop cache {cache} cannot be written ({getattr(e, 'strerror', None) or e}); "
                          "the crops are decoded again next time", UserWarning)
    return out


def _read_crops(cache: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached crops, or None (with a one-line warning) when the entry is damaged: not a file,
    unreadable, or not ``shape`` uint8 pixels."""
    why = None if cache.is_file() else "is not a file"
    if why is None:
        try:
            arr = np.load(cache)
        except Exception as e:  # noqa: BLE001 - any damage (truncation, bad header) is a miss
            why = f"is unreadable ({type(e).__name__})"
        else:
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr
            why = f"holds {arr.dtype} {arr.shape}, not uint8 {shape}"
    warnings.warn(f"crop cache {cache} {why}; decoding the crops again", UserWarning)
    return None


def crops_key(fs: FaceSet, size: int) -> str:
    """Cache key of ``load_crops``: the crop size, root, and every file's path, size and mtime (stat only)."""
    h = hashlib.sha1(f"{size}|{fs.root.resolve()}".encode())
    for p in fs.paths:
        st = os.stat(fs.root / p)
        h.update(f"\n{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def to_tensor(crops: np.ndarray, input_size: int, device: str | None = None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> channels-last float (N, 3, S, S) in [-1, 1] (``preprocessing.to_tensor``
    with the checkpoints' default normalisation), computed on ``device`` (None: the CPU)."""
    return _to_tensor(crops, input_size, channels_last=True, device=device)


def augment(x: torch.Tensor, generator: torch.Generator, flip: bool = True, max_shift: float = 0.06,
            max_scale: float = 0.08, max_rot_deg: float = 8.0, jitter: float = 0.2) -> torch.Tensor:
    """Batch augmentation of aligned faces: mirror, small similarity jitter, brightness/contrast."""
    n = x.shape[0]
    r = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731
    ang = r() * math.radians(max_rot_deg)
    sc = 1 + r() * max_scale
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / sc * sign
    theta[:, 0, 1] = -torch.sin(ang) / sc
    theta[:, 1, 0] = torch.sin(ang) / sc * sign
    theta[:, 1, 1] = torch.cos(ang) / sc
    theta[:, 0, 2] = r() * max_shift * 2
    theta[:, 1, 2] = r() * max_shift * 2
    if flip or max_shift or max_scale or max_rot_deg:
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        y = F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    else:  # brightness/contrast only: the identity warp is skipped (its draws are kept)
        y = x
    b = (r() * jitter).view(n, 1, 1, 1).to(x.device)
    c = (1 + r() * jitter).view(n, 1, 1, 1).to(x.device)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * c + mean + b).clamp(-1, 1)
    return y.contiguous(memory_format=torch.channels_last)


# Named augmentation settings (``TrainConfig.augment``, notebooks' ``AUGMENT``): ``augment``'s keyword
# arguments, or None for none. Distillation pulls an augmented crop to the teacher's target of the clean
# one: geometric jitter moves dlib's own centred embedding by 0.11 (1 - cos) and the mirror by 0.05,
# photometric jitter by 0.003 (bench/experiments/teacher_augment.py). "mirror" adds only the mirror:
# with flip-averaged teacher targets (``teacher_flip``) a crop and its mirror share one target exactly.
AUGMENTATIONS: dict[str, dict | None] = {
    "full": {},
    "photometric": {"flip": False, "max_shift": 0.0, "max_scale": 0.0, "max_rot_deg": 0.0},
    "mirror": {"max_shift": 0.0, "max_scale": 0.0, "max_rot_deg": 0.0},
    "none": None,
}


def augmentation(name: str) -> dict | None:
    """``augment``'s settings named ``name``; an unknown name lists the valid ones."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]


class PKSampler:
    """Batches of P identities x K images each; identities with fewer than K images are drawn with
    replacement. ``len()`` batches cover about one pass over the images."""

    def __init__(self, labels: np.ndarray, p: int, k: int, seed: int = 0):
        self.labels = np.asarray(labels)
        self.p, self.k, self.seed = p, k, seed
        self.by_class = {c: np.nonzero(self.labels == c)[0] for c in np.unique(self.labels)}
        if len(self.by_class) < p:
            raise ValueError(f"PKSampler needs at least P={p} identities, the data has {len(self.by_class)}")
        self.epoch = 0

    def __len__(self) -> int:
        return max(1, len(self.labels) // (self.p * self.k))

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        classes = np.array(sorted(self.by_class))
        for _ in range(len(self)):
            chosen = rng.choice(classes, size=self.p, replace=False)
            batch = []
            for c in chosen:
                pool = self.by_class[c]
                batch += rng.choice(pool, size=self.k, replace=len(pool) < self.k).tolist()
            yield np.asarray(batch, np.int64)


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int, drop_last: bool = True) -> list[np.ndarray]:
    """The index batches of one epoch (the same on every DDP rank; each rank takes its share)."""
    perm = np.random.default_rng((seed, epoch)).permutation(n)
    stop = (n // batch_size) * batch_size if drop_last and n >= batch_size else n
    return [perm[i:i + batch_size] for i in range(0, stop, batch_size)]
