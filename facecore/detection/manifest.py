"""The journal and manifest of an aligned folder (``facecore.detection.folder.align_folder``).

The journal (``.align_journal.csv``) gets one appended, fsynced write per finished batch: a row per
source with its status, detection, landmarks and the source's size, modification time and SHA-1.
``manifest.csv`` is rewritten atomically from it, sorted by path; ``read_manifest`` refuses one damaged
later (cut mid-row). Journals and manifests of older versions (fewer columns) stay readable.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.files import NO_FACE, OK, UNREADABLE, LoadedImage, atomic_write_text, file_digest

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
OLD_COLUMNS = (["path", "output", "status", "message", "score", "n_faces", "width", "height", "x1", "y1", "x2", "y2"]
               + [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")])  # journals/manifests before padded/size/mtime
# padded: the face was found by the detector's retry on the padded image; src_size/src_mtime_ns: the source's stat
V2_COLUMNS = OLD_COLUMNS + ["padded", "src_size", "src_mtime_ns"]
COLUMNS = V2_COLUMNS + ["src_sha1"]  # the source's content: a new mtime over the same bytes is not a change
JOURNAL, MANIFEST, CONFIG = ".align_journal.csv", "manifest.csv", "align_config.json"


def read_journal(path: Path) -> list[list[str]]:
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


def source_stat(path: Path) -> tuple[str, str]:
    try:
        st = path.stat()
    except OSError:
        return "", ""
    return str(st.st_size), str(st.st_mtime_ns)


def source_sha1(path: Path) -> str:
    try:
        return file_digest(path, "sha1")
    except OSError:
        return ""


def still_valid(row: list[str], src: Path, dst: Path) -> bool:
    """A journal row stands unless its source changed (size/mtime, when recorded, and then its bytes,
    when their SHA-1 is recorded) or its crop is gone. A new mtime over the same bytes is written into
    ``row``, so the next check is a stat again."""
    size, mtime, sha1 = row[-3:]
    if size:
        now = source_stat(src / row[0])
        if now != (size, mtime):
            if not (sha1 and now[0] == size and source_sha1(src / row[0]) == sha1):
                return False
            row[-2] = now[1]
    return row[2] != OK or (dst / row[1]).is_file()


def last_per_path(rows: list[list[str]]) -> list[list[str]]:
    """One row per source path, the latest (a redone file is journalled again)."""
    return list({r[0]: r for r in rows}.values())


def rows_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def manifest_row(path: str, out: str, img: LoadedImage, faces, stat: tuple[str, str, str]) -> list[str]:
    """The journal row of one source (``faces``: ``detect_align``'s for it; ``stat``: size, mtime, SHA-1)."""
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


def write_manifest(dst: Path, paths: list[str] | None = None) -> pd.DataFrame:
    """Rewrite ``dst/manifest.csv`` (sorted by path) from the journal and return it."""
    rows = last_per_path(read_journal(dst / JOURNAL))
    if paths is not None:
        keep = set(paths)
        rows = [r for r in rows if r[0] in keep]
    rows.sort(key=lambda r: r[0])
    atomic_write_text(dst / MANIFEST, ",".join(COLUMNS) + "\n" + rows_text(rows))
    return read_manifest(dst)


def read_manifest(dst: str | os.PathLike) -> pd.DataFrame:
    """The manifest of an aligned folder; a damaged one (cut mid-row, wrong fields) raises ValueError."""
    path = Path(dst) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run align_folder on this folder first")
    check_manifest(path)
    return pd.read_csv(path, dtype={"path": str, "output": str, "status": str, "message": str},
                       keep_default_na=False, na_values={c: [""] for c in COLUMNS[4:]})


def check_manifest(path: Path) -> None:
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
