"""Align a whole ``<identity>/<image>`` tree (CASIA-WebFace, LFW layout) into face crops.

Resumable: each finished batch is appended to a journal (``.align_journal.csv``) in one write and
fsynced, with each source's size, modification time and SHA-1; a rerun skips every file the journal
names, except a source that changed since and a face whose crop is missing, which are redone. A
source whose modification time changed but whose bytes did not (a data set copied or extracted
again) is not redone. Journals written before these columns existed stay valid (their rows count as
done while their crop exists; without a recorded SHA-1 a new modification time means a redo). Every crop and the final ``manifest.csv`` are written atomically
(temporary file + rename), so a kill at any moment leaves no half-written file; ``read_manifest``
refuses a manifest damaged later (cut mid-row). The SHA-1 is of the very bytes that were decoded (read
once), and the size and mtime are taken before that read, so a source changed while it was being
aligned is redone on the next run. A crop keeps the name it was journalled under; a new source whose
natural name (``x.jpg`` for ``x.png``) is held by another gets another (``x.png.jpg``), and two rows
naming one crop are both redone. One run at a time per destination (``facecore.detection.alignlock``); the
settings are checked before anything is written, and a run ends with an error, not a manifest, when
a source has no row (``check_folder`` / ``--check`` tells a complete folder from one that is not).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import numbers
import os
import sys
from collections import Counter, deque
from itertools import islice
from pathlib import Path

import pandas as pd

from ..core.files import (OK, UNREADABLE, LoadedImage, atomic_write_bytes, atomic_write_text, encode_jpeg,
                          list_images, load_rgb, output_target, unwritable_reason, update_text)
from ..core.runtime import progress_bar
from .alignlock import alignment_lock
from .detect import SELECT_RULES
from .detectors import create_detector, detector_key
from .faces import Landmarker, detect_align
from .landmarks import load_default_landmarker
from .manifest import (COLUMNS, CONFIG, JOURNAL, LANDMARK_NAMES, MANIFEST, OLD_COLUMNS, RUN, V2_COLUMNS,  # noqa: F401
                       check_folder, landmarks_of, last_per_path, manifest_row, read_journal, read_manifest, rows_text,
                       source_stat, still_valid, summarize, write_manifest)

# valid range of each numeric setting (None: no bound); integers where the bounds are
RANGES = {"size": (16, 2048), "limit": (1, None), "batch_size": (1, None), "num_workers": (0, None),
          "quality": (1, 100), "max_side": (64, None), "min_face_size": (8.0, None), "min_face_frac": (0.0, 1.0),
          "pad_frac": (0.0, 2.0)}


def check_settings(prefix: str = "", **values) -> None:
    """ValueError naming the first setting (``prefix`` + its name, e.g. ``--size``) outside ``RANGES``
    (``limit=None``: no limit)."""
    for name, v in values.items():
        lo, hi = RANGES[name]
        if v is None and name == "limit":
            continue
        integral = isinstance(lo, int)
        what = (f"{'an integer' if integral else 'a number'} "
                + (f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"))
        is_num = isinstance(v, numbers.Integral if integral else numbers.Real) and not isinstance(v, bool)
        if not (is_num and math.isfinite(v) and lo <= v and (hi is None or v <= hi)):
            raise ValueError(f"{prefix}{name} {v!r}: must be {what}")


def output_names(paths: list[str], held: dict[str, str] | None = None) -> dict[str, str]:
    """Output crop name of each source path: the same path with a ``.jpg`` suffix, unambiguous. ``held``:
    the crops already journalled (source path -> crop name), which keep their names and are given to no
    other path."""
    held = held or {}
    out, taken = {}, set(held.values())
    for p in paths:
        if p in held:
            out[p] = held[p]
            continue
        q, n = str(Path(p).with_suffix(".jpg")), 0
        while q in taken:
            q, n = p + (f".{n}" if n else "") + ".jpg", n + 1
        taken.add(q)
        out[p] = q
    return out


def _load(args: tuple[str, int]) -> tuple[LoadedImage, tuple[str, str, str]]:
    """The decoded image and its source's size, mtime (taken before reading) and the SHA-1 of the very
    bytes decoded (read once: a source rewritten meanwhile cannot give a crop of one version and the
    digest of another)."""
    path = Path(args[0])
    size, mtime = source_stat(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return LoadedImage(None, status=UNREADABLE, message=f"{type(e).__name__}: {e}".strip()), (size, mtime, "")
    return load_rgb(data, max_side=args[1]), (size, mtime, hashlib.sha1(data).hexdigest())


def align_folder(src: str | os.PathLike, dst: str | os.PathLike, size: int = 112, device: str = "cpu",
                 batch_size: int = 16, num_workers: int = 1, select: str = "center_largest",
                 min_face_size: float = 20.0, min_face_frac: float = 0.2, max_side: int = 1024, landmarks: str | Landmarker = "mtcnn",
                 quality: int = 95, limit: int | None = None, progress: bool = True, detector="mtcnn",
                 pad_frac: float = 0.25) -> pd.DataFrame:
    """Mirror ``src`` into aligned ``size`` x ``size`` JPEG crops under ``dst`` and return the manifest.

    One face per image is kept (``select``, see ``facecore.detection.detect.select_face``); faces smaller than
    ``min_face_frac`` of the image's shorter side (and than ``min_face_size`` px) are not looked for,
    which suits one-subject data set photos and is most of the speed (0 looks for every size). The manifest
    (``dst/manifest.csv``) has one row per source image: ``status`` is ``ok``, ``no_face`` or
    ``unreadable`` (with the reason in ``message``), then the detection score, the number of faces,
    the image size, the box and the 5 landmarks in the original image's pixels. ``landmarks="custom"``
    aligns with facecore's own landmark model on MTCNN's box. ``num_workers`` processes decode
    images (0: decode in this process). ``limit`` aligns only the first N files (sorted).
    ``detector``: a registered name (``facecore.detection.detectors``; ``mtcnn`` gets ``min_face_size``,
    ``min_face_frac``, ``max_side`` and ``pad_frac``: faces missed are looked for again on the image
    with a border of that share of its shorter side, ``padded`` in the manifest) or a detector object.
    """

    check_settings(size=size, limit=limit, batch_size=batch_size, num_workers=num_workers, quality=quality,
                   max_side=max_side, min_face_size=min_face_size, min_face_frac=min_face_frac, pad_frac=pad_frac)
    if select not in SELECT_RULES:
        raise ValueError(f"select {select!r}: must be one of {', '.join(SELECT_RULES)}")
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"align_folder: source folder {src} does not exist or is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"align_folder: destination {dst} must not be inside the source {src}")
    if isinstance(detector, str):
        detector = _detector(detector, device, min_face_size, max_side, min_face_frac, pad_frac)
    landmark_name = landmarks if isinstance(landmarks, str) else getattr(landmarks, "name", "callable")
    landmarker = _resolve_landmarker(landmarks, device)
    _make_destination(dst)
    with alignment_lock(dst):
        _check_config(dst, {"size": size, "select": select, "min_face_size": min_face_size,
                            "min_face_frac": min_face_frac, "max_side": max_side, "landmarks": landmark_name,
                            "quality": quality, "detector": detector_key(detector)})
        paths = list_images(src)[:limit]
        todo, names = _pending(src, dst, paths)
        crop = dict(detector=detector, size=size, select=select, landmarker=landmarker, dst=dst, names=names,
                    quality=quality)
        bar = progress_bar(total=len(paths), initial=len(paths) - len(todo), desc=f"align {src.name}", unit="img",
                           disable=not progress)
        try:
            if todo:  # a complete folder is only read (it may be read-only)
                _align_all([(str(src / p), max_side) for p in todo], todo, crop, bar, batch_size, num_workers)
        finally:
            bar.close()
        return write_manifest(dst, paths, {"src": str(src.resolve()), "limit": limit, "sources": len(paths)})


def _align_all(jobs: list[tuple[str, int]], todo: list[str], crop: dict, bar, batch_size: int,
               num_workers: int) -> None:
    """Decode (``num_workers`` processes), align and journal ``todo``, one fsynced append per batch."""
    pool = mp.get_context("fork").Pool(num_workers) if num_workers > 0 and todo else None
    try:
        loaded = _prefetch(pool, jobs, 4 * batch_size * num_workers) if pool else map(_load, jobs)
        with open(crop["dst"] / JOURNAL, "a", newline="") as journal:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                imgs, stats = zip(*[next(loaded) for _ in batch])
                journal.write(rows_text(_align_batch(batch, imgs, stats, **crop)))
                journal.flush()
                os.fsync(journal.fileno())
                bar.update(len(batch))
    finally:
        if pool:
            pool.terminate()


def _detector(name: str, device: str, min_face_size: float, max_side: int, min_face_frac: float, pad_frac: float):
    if name == "mtcnn":
        return create_detector("mtcnn", device=device, min_face_size=min_face_size, max_side=max_side,
                               min_face_frac=min_face_frac, pad_frac=pad_frac)
    return create_detector(name)


def _make_destination(dst: Path) -> None:
    """Create ``dst`` (and its parents); ValueError (one line) when it cannot be."""
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"align_folder: cannot create destination {dst} ({e.strerror}); "
                         "choose another folder") from None


def _require_writable(dst: Path, why: str) -> None:
    """ValueError (one line) when no file can be created in ``dst``."""
    if reason := unwritable_reason(dst):
        raise ValueError(f"align_folder: cannot write in destination {dst} ({reason}), {why}; "
                         "make it writable or choose another folder")


def _check_config(dst: Path, config: dict) -> None:
    """Record the folder's settings on the first run; a later run with other settings is refused while
    the journal holds a row (a folder with nothing aligned yet takes the new settings). The folder's own
    files must be files (``facecore.core.files.output_target``): a FIFO would block the reads."""
    for name in (CONFIG, JOURNAL, MANIFEST):
        output_target(dst / name, "align_folder:")
    cfg_path = dst / CONFIG
    if not cfg_path.exists():
        _require_writable(dst, "nothing aligned yet")
        atomic_write_text(cfg_path, json.dumps(config, indent=1))
        return
    old = json.loads(cfg_path.read_text())
    # keys an older facecore did not write (e.g. "detector") are not compared
    diff = {k: (old.get(k), v) for k, v in config.items() if k in old and old.get(k) != v}
    if diff and not read_journal(dst / JOURNAL):
        atomic_write_text(cfg_path, json.dumps(config, indent=1))
    elif diff:
        raise ValueError(f"align_folder: {dst} was aligned with other settings {diff} (old, new); "
                         f"use a new destination folder or delete {dst}")


def _pending(src: Path, dst: Path, paths: list[str]) -> tuple[list[str], dict[str, str]]:
    """The paths the journal does not hold as done, and the crop name of each: its partial last line,
    stale rows and rows that share a crop are dropped."""
    journal_path = dst / JOURNAL
    rows = [r for r in last_per_path(read_journal(journal_path)) if still_valid(r, src, dst)]
    held = Counter(r[1] for r in rows if r[2] == OK)
    rows = [r for r in rows if r[2] != OK or held[r[1]] == 1]  # which of two rows wrote the crop is unknown
    done = {r[0] for r in rows}
    todo = [p for p in paths if p not in done]
    if todo:
        _require_writable(dst, f"{len(todo)} of {len(paths)} images still to align")
    if journal_path.exists() or rows:
        update_text(journal_path, rows_text(rows))  # rewritten only when rows were dropped or changed
    return todo, output_names(todo, {r[0]: r[1] for r in rows if r[2] == OK})


def _align_batch(batch: list[str], imgs: list[LoadedImage], stats: list[tuple[str, str, str]], detector, size: int,
                 select: str, landmarker, dst: Path, names: dict[str, str], quality: int) -> list[list[str]]:
    """Detect and align a batch of decoded images and write each crop; their journal rows (``stats``:
    each source's size, mtime and SHA-1)."""
    good = [i for i, im in enumerate(imgs) if im.status == OK]
    faces = detect_align([imgs[i].rgb for i in good], detector, size, select, landmarker) if good else []
    per_img = dict(zip(good, faces))
    rows = []
    for i, (p, im) in enumerate(zip(batch, imgs)):
        f = per_img.get(i, [])
        if f:
            atomic_write_bytes(dst / names[p], encode_jpeg(f[0].crop, quality))
        rows.append(manifest_row(p, names[p], im, f, stats[i]))
    return rows


def _prefetch(pool, jobs: list, ahead: int):
    """Decoded images in order, at most ``ahead`` of them decoded ahead of the consumer (``Pool.imap``
    decodes the whole list ahead: 8 GB of pixels held for a 58k-photo set)."""
    pending, it = deque(), iter(jobs)
    for job in islice(it, max(ahead, 1)):
        pending.append(pool.apply_async(_load, (job,)))
    while pending:
        loaded = pending.popleft().get()
        job = next(it, None)
        if job is not None:
            pending.append(pool.apply_async(_load, (job,)))
        yield loaded


def _resolve_landmarker(landmarks: str | Landmarker, device: str) -> Landmarker | None:
    if callable(landmarks):
        return landmarks
    if landmarks == "mtcnn":
        return None
    if landmarks == "custom":
        return load_default_landmarker(device=device)
    raise ValueError(f"landmarks must be 'mtcnn', 'custom' or a callable, got {landmarks!r}")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.detection.folder SRC DST [--size 112] [--limit N] [--min_face_frac F]``: align (or resume)
    a folder; ``python -m facecore.detection.folder --check [SRC] DST``: check that it is complete and consistent
    (``check_folder``). Bad input: one line, exit 2."""
    p = _Parser(prog="python -m facecore.detection.folder", description=main.__doc__.split("\n")[0])
    p.add_argument("src", nargs="?", help="folder of <identity>/<image> photos")
    p.add_argument("dst", help="folder of aligned crops and manifest.csv")
    p.add_argument("--check", action="store_true", help="only check dst: complete, consistent, no stale row")
    p.add_argument("--size", type=int, default=112, help="crop side in pixels, 16 to 2048")
    p.add_argument("--limit", type=int, help="align only the first N files (sorted), N >= 1")
    p.add_argument("--min_face_frac", type=float, default=0.2,
                   help="ignore faces smaller than this share of the shorter side, 0 to 1")
    args = p.parse_args(argv)
    try:
        check_settings("--", size=args.size, limit=args.limit, min_face_frac=args.min_face_frac)
        if args.check:
            m = check_folder(args.dst, args.src)
        elif args.src is None:
            raise ValueError("give SRC and DST, or --check DST")
        else:
            m = align_folder(args.src, args.dst, size=args.size, limit=args.limit, min_face_frac=args.min_face_frac,
                             num_workers=0, progress=False)
    except (ValueError, FileNotFoundError) as e:
        print(f"facecore.detection.folder: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a crop sub-folder made read-only, or a full disk, mid-run
        print(f"facecore.detection.folder: error: {e.filename or args.dst}: {e.strerror}", file=sys.stderr)
        return 2
    print(summarize(m)[["images"]].T.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
