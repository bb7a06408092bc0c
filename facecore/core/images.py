"""Any image a caller hands the library -> an HxWx3 uint8 RGB array, or a clear error naming the parameter.

Accepted: a file path (decoded by ``files.load_rgb``: EXIF rotation, grey, 16-bit, alpha), a PIL
image (EXIF rotation applied, as for a path), or a uint8 array: HxWx3 RGB, HxW or HxWx1 grey, HxWx4
RGBA (alpha dropped). Arrays from OpenCV are BGR: say so with ``bgr=True``; nothing can tell them
apart from RGB, and matching BGR faces silently scores lower.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .files import _to_rgb, load_rgb

EXPECTED = "a file path, a PIL image or an HxWx3 uint8 RGB array (HxW grey and HxWx4 RGBA accepted)"


def as_rgb(image, bgr: bool = False, param: str = "image") -> np.ndarray:
    """``image`` as a contiguous HxWx3 uint8 RGB array; ``bgr``: a 3- or 4-channel array is BGR(A).

    TypeError for another kind of object, ValueError for an array of the wrong shape or type, an
    unreadable file or ``bgr`` with a path or PIL image; FileNotFoundError for a missing file. Each
    message starts with ``param``."""
    if isinstance(image, (str, os.PathLike)):
        _no_bgr(bgr, param, "a file path")
        return _from_path(Path(image), param)
    if _is_pil(image):
        from PIL import ImageOps

        _no_bgr(bgr, param, "a PIL image")
        return np.ascontiguousarray(_to_rgb(ImageOps.exif_transpose(image)))
    if isinstance(image, np.ndarray):
        return _from_array(image, bgr, param)
    raise TypeError(f"{param}: expected {EXPECTED}, got {type(image).__name__}")


def _from_path(path: Path, param: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{param}={path}: no such file")
    loaded = load_rgb(path, max_side=None)
    if loaded.rgb is None:
        raise ValueError(f"{param}={path}: not a readable image ({loaded.message})")
    return loaded.rgb


def _from_array(a: np.ndarray, bgr: bool, param: str) -> np.ndarray:
    if a.dtype != np.uint8:
        hint = " (scale floats in [0, 1] by 255 and cast: (a * 255).round().astype(np.uint8))" if a.dtype.kind == "f" else ""
        raise ValueError(f"{param}: array of dtype {a.dtype}; give uint8 values 0-255{hint}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:  # grey: no channel order, bgr changes nothing
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"{param}: array of shape {a.shape}; expected HxWx3 RGB (or HxW grey, HxWx4 RGBA)")
    if min(a.shape[:2]) == 0:
        raise ValueError(f"{param}: empty image (shape {a.shape})")
    a = a[:, :, :3] if a.shape[2] == 4 else a
    return np.ascontiguousarray(a[:, :, ::-1] if bgr else a)


def _is_pil(image) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pillow is a dependency; without it nothing is a PIL image
        return False
    return isinstance(image, Image.Image)


def _no_bgr(bgr: bool, param: str, what: str) -> None:
    if bgr:
        raise ValueError(f"{param}: bgr=True applies to 3- or 4-channel arrays only, not to {what}")
