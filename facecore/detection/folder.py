"""Align a whole ``<identity>/<image>`` tree (CASIA-WebFace, LFW layout) into face crops.

Resumable: each finished batch is appended to a journal (``.align_journal.csv``) in one write and
fsynced, with each source's size, modification time and SHA-1; a rerun skips every file the journal
names, except a source that changed since and a face whose crop is missing, which are redone. A
source whose modification time changed but whose bytes did not (a data set copied or extracted
again) is not redone. Journals written before these columns existed stay valid (their rows count as
done while their crop exists; without a recorded SHA-1 a new modification time means a redo). Every crop and the final ``manifest.csv`` are written atomically
(temporary file + rename), so a kill at any moment leaves no half-written file; ``read_manifest``
refuses a manifest damaged later (cut mid-row).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
from collections import deque
from itertools import islice
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..core.files import OK, LoadedImage, atomic_write_bytes, atomic_write_text, encode_jpeg, list_images, load_rgb
from .detectors import create_detector, detector_key
from .faces import Landmarker, detect_align
from .landmarks import load_default_landmarker
from .manifest import (COLUMNS, CONFIG, JOURNAL, LANDMARK_NAMES, MANIFEST, OLD_COLUMNS, V2_COLUMNS,  # noqa: F401
                       landmarks_of, last_per_path, manifest_row, read_journal, read_manifest, rows_text, source_sha1,
                       source_stat, still_valid, summarize, write_manifest)


def output_names(paths: list[str]) -> dict[str, str]:
    """Output crop name of each source path: the same path with a ``.jpg`` suffix, unambiguous."""
    out, taken = {}, set()
    for p in paths:
        q = str(Path(p).with_suffix(".jpg"))
        if q in taken:
            q = p + ".jpg"
        taken.add(q)
        out[p] = q
    return out


def _load(args: tuple[str, int]) -> tuple[LoadedImage, str]:
    """The decoded image and the SHA-1 of its file (hashed in the worker, just before the decode reads it again
    from the page cache)."""
    return load_rgb(args[0], max_side=args[1]), source_sha1(Path(args[0]))


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
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"align_folder: source folder {src} does not exist or is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"align_folder: destination {dst} must not be inside the source {src}")
    if isinstance(detector, str):
        detector = _detector(detector, device, min_face_size, max_side, min_face_frac, pad_frac)
    landmark_name = landmarks if isinstance(landmarks, str) else getattr(landmarks, "name", "callable")
    _check_config(dst, {"size": size, "select": select, "min_face_size": min_face_size, "min_face_frac": min_face_frac,
                        "max_side": max_side, "landmarks": landmark_name, "quality": quality,
                        "detector": detector_key(detector)})
    paths = list_images(src)[:limit]
    todo = _pending(src, dst, paths)
    crop = dict(detector=detector, size=size, select=select, landmarker=_resolve_landmarker(landmarks, device),
                dst=dst, names=output_names(paths), quality=quality)
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc=f"align {src.name}", unit="img",
               disable=not progress)
    pool = mp.get_context("fork").Pool(num_workers) if num_workers > 0 and todo else None
    try:
        jobs = [(str(src / p), max_side) for p in todo]
        stats = {p: source_stat(src / p) for p in todo}  # before decoding: a change during the run is redone next time
        loaded = _prefetch(pool, jobs, 4 * batch_size * num_workers) if pool else map(_load, jobs)
        with open(dst / JOURNAL, "a", newline="") as journal:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                imgs, digests = zip(*[next(loaded) for _ in batch])
                rows = _align_batch(batch, imgs, [(*stats[p], d) for p, d in zip(batch, digests)], **crop)
                journal.write(rows_text(rows))
                journal.flush()
                os.fsync(journal.fileno())
                bar.update(len(batch))
    finally:
        bar.close()
        if pool:
            pool.terminate()
    return write_manifest(dst, paths)


def _detector(name: str, device: str, min_face_size: float, max_side: int, min_face_frac: float, pad_frac: float):
    if name == "mtcnn":
        return create_detector("mtcnn", device=device, min_face_size=min_face_size, max_side=max_side,
                               min_face_frac=min_face_frac, pad_frac=pad_frac)
    return create_detector(name)


def _check_config(dst: Path, config: dict) -> None:
    """Record the folder's settings on the first run; a later run with other settings is refused."""
    dst.mkdir(parents=True, exist_ok=True)
    cfg_path = dst / CONFIG
    if not cfg_path.exists():
        atomic_write_text(cfg_path, json.dumps(config, indent=1))
        return
    old = json.loads(cfg_path.read_text())
    # keys an older facecore did not write (e.g. "detector") are not compared
    diff = {k: (old.get(k), v) for k, v in config.items() if k in old and old.get(k) != v}
    if diff:
        raise ValueError(f"align_folder: {dst} was aligned with other settings {diff} (old, new); "
                         f"use a new destination folder or delete {dst}")


def _pending(src: Path, dst: Path, paths: list[str]) -> list[str]:
    """The paths the journal does not hold as done; its partial last line and stale rows are dropped."""
    journal_path = dst / JOURNAL
    done_rows = [r for r in last_per_path(read_journal(journal_path)) if still_valid(r, src, dst)]
    atomic_write_text(journal_path, rows_text(done_rows))
    done = {r[0] for r in done_rows}
    return [p for p in paths if p not in done]


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


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.detection.folder SRC DST [--size 112] [--limit N]``: align (or resume) a folder;
    ``python -m facecore.detection.folder --check DST``: read its manifest. Bad input: one line, exit 2."""
    p = argparse.ArgumentParser(prog="python -m facecore.detection.folder", description=main.__doc__.split("\n")[0])
    p.add_argument("src", nargs="?", help="folder of <identity>/<image> photos")
    p.add_argument("dst", help="folder of aligned crops and manifest.csv")
    p.add_argument("--check", action="store_true", help="only read and summarise dst's manifest")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--limit", type=int)
    p.add_argument("--min_face_frac", type=float, default=0.2)
    args = p.parse_args(argv)
    try:
        if args.check:
            m = read_manifest(args.dst)
        elif args.src is None:
            raise ValueError("give SRC and DST, or --check DST")
        else:
            m = align_folder(args.src, args.dst, size=args.size, limit=args.limit, min_face_frac=args.min_face_frac,
                             num_workers=0, progress=False)
    except (ValueError, FileNotFoundError) as e:
        print(f"facecore.detection.folder: error: {e}", file=sys.stderr)
        return 2
    print(summarize(m)[["images"]].T.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
