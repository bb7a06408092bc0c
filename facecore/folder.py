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

import csv
import io
import json
import multiprocessing as mp
import os
from collections import deque
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from .faces import Landmarker, detect_align
from .files import NO_FACE, OK, UNREADABLE, LoadedImage, atomic_write_bytes, atomic_write_text, encode_jpeg, list_images, load_rgb

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
OLD_COLUMNS = (["path", "output", "status", "message", "score", "n_faces", "width", "height", "x1", "y1", "x2", "y2"]
               + [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")])  # journals/manifests before padded/size/mtime
# padded: the face was found by the detector's retry on the padded image; src_size/src_mtime_ns: the source's stat
V2_COLUMNS = OLD_COLUMNS + ["padded", "src_size", "src_mtime_ns"]
COLUMNS = V2_COLUMNS + ["src_sha1"]  # the source's content: a new mtime over the same bytes is not a change
JOURNAL, MANIFEST, CONFIG = ".align_journal.csv", "manifest.csv", "align_config.json"


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


def _read_journal(path: Path) -> list[list[str]]:
    """Complete rows of the journal; a row cut short by a kill is dropped."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # the last line has no newline: a partial write
    for row in csv.reader(lines):
        if len(row) in (len(OLD_COLUMNS), len(V2_COLUMNS)):
            row = row + [""] * (len(COLUMNS) - len(row))  # a row of an older journal: source stat/digest unknown
        if len(row) == len(COLUMNS) and row[2] in (OK, NO_FACE, UNREADABLE):
            rows.append(row)
    return rows


def _stat(path: Path) -> tuple[str, str]:
    try:
        st = path.stat()
    except OSError:
        return "", ""
    return str(st.st_size), str(st.st_mtime_ns)


def _sha1(path: Path) -> str:
    from .files import file_digest

    try:
        return file_digest(path, "sha1")
    except OSError:
        return ""


def _still_valid(row: list[str], src: Path, dst: Path) -> bool:
    """A journal row stands unless its source changed (size/mtime, when recorded, and then its bytes,
    when their SHA-1 is recorded) or its crop is gone. A new mtime over the same bytes is written into
    ``row``, so the next check is a stat again."""
    size, mtime, sha1 = row[-3:]
    if size:
        now = _stat(src / row[0])
        if now != (size, mtime):
            if not (sha1 and now[0] == size and _sha1(src / row[0]) == sha1):
                return False
            row[-2] = now[1]
    return row[2] != OK or (dst / row[1]).is_file()


def _last_per_path(rows: list[list[str]]) -> list[list[str]]:
    """One row per source path, the latest (a redone file is journalled again)."""
    return list({r[0]: r for r in rows}.values())


def _rows_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def _row(path: str, out: str, img: LoadedImage, faces, stat: tuple[str, str, str]) -> list[str]:
    blank = [""] * (len(OLD_COLUMNS) - 8)
    if img.status != OK:
        return [path, "", UNREADABLE, " ".join(img.message.split()), "", "0", "", ""] + blank + ["0", *stat]
    if not faces:
        return [path, "", NO_FACE, "no face detected", "", "0", str(img.width), str(img.height)] + blank + ["0", *stat]
    f = faces[0]
    box = [_fmt(v * img.scale) for v in f.box]
    lms = [_fmt(v * img.scale) for v in f.landmarks.reshape(-1)]
    return ([path, out, OK, "", _fmt(f.score, 5), str(f.n_faces), str(img.width), str(img.height)] + box + lms
            + [str(int(f.padded)), *stat])


def _load(args: tuple[str, int]) -> tuple[LoadedImage, str]:
    """The decoded image and the SHA-1 of its file (hashed in the worker, just before the decode reads it again
    from the page cache)."""
    return load_rgb(args[0], max_side=args[1]), _sha1(Path(args[0]))


def align_folder(src: str | os.PathLike, dst: str | os.PathLike, size: int = 112, device: str = "cpu",
                 batch_size: int = 16, num_workers: int = 1, select: str = "center_largest",
                 min_face_size: float = 20.0, min_face_frac: float = 0.2, max_side: int = 1024, landmarks: str | Landmarker = "mtcnn",
                 quality: int = 95, limit: int | None = None, progress: bool = True, detector="mtcnn",
                 pad_frac: float = 0.25) -> pd.DataFrame:
    """Mirror ``src`` into aligned ``size`` x ``size`` JPEG crops under ``dst`` and return the manifest.

    One face per image is kept (``select``, see ``facecore.detect.select_face``); faces smaller than
    ``min_face_frac`` of the image's shorter side (and than ``min_face_size`` px) are not looked for,
    which suits one-subject data set photos and is most of the speed (0 looks for every size). The manifest
    (``dst/manifest.csv``) has one row per source image: ``status`` is ``ok``, ``no_face`` or
    ``unreadable`` (with the reason in ``message``), then the detection score, the number of faces,
    the image size, the box and the 5 landmarks in the original image's pixels. ``landmarks="custom"``
    aligns with facecore's own landmark model on MTCNN's box. ``num_workers`` processes decode
    images (0: decode in this process). ``limit`` aligns only the first N files (sorted).
    ``detector``: a registered name (``facecore.detectors``; ``mtcnn`` gets ``min_face_size``,
    ``min_face_frac``, ``max_side`` and ``pad_frac``: faces missed are looked for again on the image
    with a border of that share of its shorter side, ``padded`` in the manifest) or a detector object.
    """
    from tqdm.auto import tqdm

    from .detectors import create_detector, detector_key

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"align_folder: source folder {src} does not exist or is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"align_folder: destination {dst} must not be inside the source {src}")
    landmark_name = landmarks if isinstance(landmarks, str) else getattr(landmarks, "name", "callable")
    if isinstance(detector, str):
        detector = (create_detector("mtcnn", device=device, min_face_size=min_face_size, max_side=max_side,
                                    min_face_frac=min_face_frac, pad_frac=pad_frac) if detector == "mtcnn"
                    else create_detector(detector))
    config = {"size": size, "select": select, "min_face_size": min_face_size, "min_face_frac": min_face_frac,
              "max_side": max_side,
              "landmarks": landmark_name, "quality": quality, "detector": detector_key(detector)}
    dst.mkdir(parents=True, exist_ok=True)
    cfg_path = dst / CONFIG
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        # keys an older facecore did not write (e.g. "detector") are not compared
        diff = {k: (old.get(k), v) for k, v in config.items() if k in old and old.get(k) != v}
        if diff:
            raise ValueError(f"align_folder: {dst} was aligned with other settings {diff} (old, new); "
                             f"use a new destination folder or delete {dst}")
    else:
        atomic_write_text(cfg_path, json.dumps(config, indent=1))

    paths = list_images(src)[:limit]
    names = output_names(paths)
    journal_path = dst / JOURNAL
    done_rows = [r for r in _last_per_path(_read_journal(journal_path)) if _still_valid(r, src, dst)]
    atomic_write_text(journal_path, _rows_text(done_rows))  # drop any partial last line and stale rows
    done = {r[0] for r in done_rows}
    todo = [p for p in paths if p not in done]

    landmarker = _resolve_landmarker(landmarks, device)
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc=f"align {src.name}", unit="img",
               disable=not progress)
    pool = mp.get_context("fork").Pool(num_workers) if num_workers > 0 and todo else None
    try:
        jobs = [(str(src / p), max_side) for p in todo]
        stats = {p: _stat(src / p) for p in todo}  # before decoding: a change during the run is redone next time
        loaded = _prefetch(pool, jobs, 4 * batch_size * num_workers) if pool else map(_load, jobs)
        with open(journal_path, "a", newline="") as journal:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                imgs, digests = zip(*[next(loaded) for _ in batch])
                good = [i for i, im in enumerate(imgs) if im.status == OK]
                faces = detect_align([imgs[i].rgb for i in good], detector, size, select, landmarker) if good else []
                per_img = dict(zip(good, faces))
                rows = []
                for i, (p, im) in enumerate(zip(batch, imgs)):
                    f = per_img.get(i, [])
                    if f:
                        atomic_write_bytes(dst / names[p], encode_jpeg(f[0].crop, quality))
                    rows.append(_row(p, names[p], im, f, (*stats[p], digests[i])))
                journal.write(_rows_text(rows))
                journal.flush()
                os.fsync(journal.fileno())
                bar.update(len(batch))
    finally:
        bar.close()
        if pool:
            pool.terminate()
    return write_manifest(dst, paths)


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


def write_manifest(dst: Path, paths: list[str] | None = None) -> pd.DataFrame:
    """Rewrite ``dst/manifest.csv`` (sorted by path) from the journal and return it."""
    rows = _last_per_path(_read_journal(dst / JOURNAL))
    if paths is not None:
        keep = set(paths)
        rows = [r for r in rows if r[0] in keep]
    rows.sort(key=lambda r: r[0])
    atomic_write_text(dst / MANIFEST, ",".join(COLUMNS) + "\n" + _rows_text(rows))
    return read_manifest(dst)


def read_manifest(dst: str | os.PathLike) -> pd.DataFrame:
    """The manifest of an aligned folder; a damaged one (cut mid-row, wrong fields) raises ValueError."""
    path = Path(dst) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run align_folder on this folder first")
    _check_manifest(path)
    return pd.read_csv(path, dtype={"path": str, "output": str, "status": str, "message": str},
                       keep_default_na=False, na_values={c: [""] for c in COLUMNS[4:]})


def _check_manifest(path: Path) -> None:
    text = path.read_text()
    fix = f"rerun align_folder on {path.parent} to rewrite it from the journal"
    if not text.endswith("\n"):
        raise ValueError(f"{path} is torn (its last row is cut short); {fix}")
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    if header not in (COLUMNS, V2_COLUMNS, OLD_COLUMNS):
        raise ValueError(f"{path}: header is not a facecore manifest's; {fix}")
    for lineno, row in enumerate(rows, start=2):
        if len(row) != len(header) or row[2] not in (OK, NO_FACE, UNREADABLE):
            raise ValueError(f"{path}, line {lineno}: damaged row ({len(row)} of {len(header)} fields); {fix}")


def summarize(manifest: pd.DataFrame) -> pd.DataFrame:
    """Counts and shares per status, with the unreadable files named."""
    counts = manifest["status"].value_counts().reindex([OK, NO_FACE, UNREADABLE], fill_value=0)
    table = pd.DataFrame({"images": counts, "share_%": (100 * counts / max(len(manifest), 1)).round(2)})
    bad = manifest.loc[manifest["status"] == UNREADABLE, "path"].tolist()
    table["files"] = ["", ", ".join(manifest.loc[manifest["status"] == NO_FACE, "path"].head(10)), ", ".join(bad)]
    return table


def landmarks_of(manifest: pd.DataFrame) -> np.ndarray:
    """The (N, 5, 2) landmarks of a manifest's rows (NaN where no face was found)."""
    cols = [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")]
    return manifest[cols].to_numpy(np.float64).reshape(-1, 5, 2)


def _resolve_landmarker(landmarks: str | Landmarker, device: str) -> Landmarker | None:
    if callable(landmarks):
        return landmarks
    if landmarks == "mtcnn":
        return None
    if landmarks == "custom":
        from .landmarks import load_default_landmarker

        return load_default_landmarker(device=device)
    raise ValueError(f"landmarks must be 'mtcnn', 'custom' or a callable, got {landmarks!r}")


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.folder SRC DST [--size 112] [--limit N]``: align (or resume) a folder;
    ``python -m facecore.folder --check DST``: read its manifest. Bad input: one line, exit 2."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m facecore.folder", description=main.__doc__.split("\n")[0])
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
        print(f"facecore.folder: error: {e}", file=sys.stderr)
        return 2
    print(summarize(m)[["images"]].T.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
