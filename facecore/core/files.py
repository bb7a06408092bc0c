"""Robust image decoding and atomic file writes.

Every facecore writer goes through ``output_target``'s rule: an output that is a symlink is written
through to its target (replaced atomically, the link kept); one that is a folder, a device node, a
FIFO or a socket is refused with ``OutputPathError`` (a ValueError naming the argument and the path).
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


def load_rgb(path: str | os.PathLike | bytes, max_side: int | None = 1024) -> LoadedImage:
    """Decode any common image file (or a file's bytes, already read) to HxWx3 uint8 RGB, never
    raising on a bad file.

    Handles EXIF rotation, CMYK, 16-bit, palette, grey and alpha images. Images whose longer side
    exceeds ``max_side`` are decoded reduced (JPEG DCT scaling, then area resampling). A file that
    cannot be decoded completely gets ``status="unreadable"`` and the reason in ``message``.
    """
    try:
        if (len(path) if isinstance(path, bytes) else os.path.getsize(path)) == 0:
            return LoadedImage(None, status=UNREADABLE, message="empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
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


class OutputPathError(ValueError):
    """An output path facecore will not write: a folder, device node, FIFO, socket or symlink loop."""


_NOT_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
              (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def output_target(path: str | os.PathLike, what: str | None = None) -> Path:
    """The regular file that writing ``path`` creates or replaces; the one rule of every facecore writer.

    A symlink is written through: its final target is replaced (atomically, by the writers), the link
    itself is kept. A path, or link target, that exists and is not a regular file (a folder, a device
    node such as ``/dev/null``, a FIFO, a socket) or a symlink loop raises ``OutputPathError`` naming
    ``what`` (e.g. the command-line argument) and the path.
    """
    p = Path(path)
    target = Path(os.path.realpath(p)) if p.is_symlink() else p
    label = f"{what} {p}" if what else str(p)
    if target != p:
        label += f" (a link to {target})"
    if target.is_symlink():
        raise OutputPathError(f"{label}: is a symlink loop; give a file path")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OutputPathError(f"{label}: cannot be checked ({e.strerror}); give another file path") from None
    for test, kind in _NOT_FILES:
        if test(mode):
            fix = "give a file name inside it" if kind == "a folder" else "give a regular file path"
            raise OutputPathError(f"{label}: is {kind}, not a regular file; {fix}")
    return target


def regular_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file itself (a link, folder, device, FIFO or socket is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, what: str | None = None) -> Path:
    """``path`` itself when ``output_target`` accepts it (else ``OutputPathError``): for early checks."""
    output_target(path, what)
    return Path(path)


def commit_output(tmp: str | os.PathLike, path: str | os.PathLike, what: str | None = None) -> Path:
    """Move the finished temporary file ``tmp`` over ``path``'s target (checked again by ``output_target``:
    the path may have changed while the data was written) and return the target. The file gets the mode a
    plain ``open(path, "wb")`` would give it: the replaced file's, else 0666 less the umask. On any error
    ``tmp`` is removed and the error raised (an OSError names ``path``, not the temporary file)."""
    try:
        target = output_target(path, what)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode) & 0o777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()  # mkstemp's 0600 would make every output private
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, tmp, path) from None
    return target


def _named(e: BaseException, tmp: str | os.PathLike, path: str | os.PathLike) -> BaseException:
    """``e``, or for an OSError about the temporary file ``tmp`` the same error about ``path``."""
    if isinstance(e, OSError) and e.errno and e.filename in (str(tmp), str(Path(tmp).parent)):
        return OSError(e.errno, e.strerror, str(path))  # the errno's subclass, e.g. PermissionError
    return e


@contextmanager
def atomic_output(path: str | os.PathLike, what: str | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``'s target for a library to write (e.g. ``savefig``); committed
    over the target (``commit_output``) when the block ends without an error, else removed."""
    target = output_target(path, what)
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # a link's target folder is never created
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None  # e.g. a read-only folder
    os.close(fd)
    try:
        yield Path(tmp)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, tmp, path) from None
    commit_output(tmp, path, what)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, by the rule of
    ``output_target`` (a symlink is written through; a folder, device, FIFO or socket is refused)."""
    with atomic_output(path, what) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


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


def atomic_write_text(path: str | os.PathLike, text: str, what: str | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), what)


def update_text(path: str | os.PathLike, text: str, what: str | None = None) -> bool:
    """``atomic_write_text`` unless the file already holds exactly ``text`` (so a complete output in a
    read-only folder is left as it is); whether it wrote."""
    data = text.encode("utf-8")
    target = output_target(path, what)
    try:
        if regular_file(target) and target.stat().st_size == len(data) and target.read_bytes() == data:
            return False
    except OSError:
        pass  # unreadable: written again
    atomic_write_bytes(path, data, what)
    return True


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why no file can be created in ``folder`` (tried: a probe file, removed at once), or None when one can."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".facecore.probe.", dir=folder)
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    os.unlink(probe)
    return None


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


def write_markdown(out_dir: str | os.PathLike, stem: str, markdown: str, title: str) -> None:
    """``out_dir/stem.md``: ``# title`` + ``markdown``, atomically (``out_dir`` made if absent)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"{stem}.md", f"# {title}\n\n{markdown}")


def write_table(out_dir: str | os.PathLike, stem: str, table, markdown: str, title: str) -> None:
    """``out_dir/stem.csv`` (the pandas table) and ``out_dir/stem.md`` (``write_markdown``), atomically."""
    write_markdown(out_dir, stem, markdown, title)
    atomic_write_text(Path(out_dir) / f"{stem}.csv", table.to_csv(index=False))
