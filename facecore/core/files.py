"""Robust image decoding and atomic file writes."""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
OK, NO_FACE, UNREADABLE = "ok", "no_face", "unreadable"


@dataclass
class LoadedImage:
    """A decoded RGB image; ``scale`` maps its pixel coordinates back to the original file's."""

    rgb: np.ndarray | None
    width: int = 0
    height: int = 0
    scale: float = 1.0
    status: str = OK
    message: str = ""


def load_rgb(path: str | os.PathLike, max_side: int | None = 1024) -> LoadedImage:
    """Decode any common image file to HxWx3 uint8 RGB, never raising on a bad file.

    Handles EXIF rotation, CMYK, 16-bit, palette, grey and alpha images. Images whose longer side
    exceeds ``max_side`` are decoded reduced (JPEG DCT scaling, then area resampling). A file that
    cannot be decoded completely gets ``status="unreadable"`` and the reason in ``message``.
    """
    try:
        if os.path.getsize(path) == 0:
            return LoadedImage(None, status=UNREADABLE, message="empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = ImageOps.exif_transpose(im).size if _rotated(im) else im.size
                if max_side and im.format == "JPEG" and max(im.size) > 2 * max_side:
                    im.draft("RGB", (max_side, max_side))
                im.load()
                im = ImageOps.exif_transpose(im)
                arr = _to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return LoadedImage(None, status=UNREADABLE, message=f"{type(e).__name__}: {e}".strip())
    scale = width / arr.shape[1]
    if max_side and max(arr.shape[:2]) > max_side:
        s = max_side / max(arr.shape[:2])
        arr = cv2.resize(arr, (max(1, round(arr.shape[1] * s)), max(1, round(arr.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
        scale = width / arr.shape[1]
    return LoadedImage(np.ascontiguousarray(arr), width, height, scale)


def _rotated(im) -> bool:
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # a broken EXIF block is no reason to fail the image
        return False


def _to_rgb(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)
        a = a / 257.0 if a.max() > 255 else a
        a = np.clip(a, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "F":
        a = np.clip(np.asarray(im), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA")).astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0
        return (rgba[..., :3] * alpha).round().astype(np.uint8)  # composite on black
    return np.asarray(im.convert("RGB"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename; the file
    gets the mode a plain ``open(path, "wb")`` would (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make every output private
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buf.tobytes()


def list_images(root: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the image files below ``root``, sorted, hidden files skipped."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def write_table(out_dir: str | os.PathLike, stem: str, table, markdown: str, title: str) -> None:
    """``out_dir/stem.csv`` (the pandas table) and ``out_dir/stem.md`` (``# title`` + ``markdown``), atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"{stem}.csv", table.to_csv(index=False))
    atomic_write_text(out_dir / f"{stem}.md", f"# {title}\n\n{markdown}")
