"""The journal and manifest of an aligned folder (``facecore.detection.folder.align_folder``).

The journal (``.align_journal.csv``) gets one appended, fsynced write per finished batch: a row per
source with its status, detection, landmarks and the source's size, modification time and SHA-1.
``manifest.csv`` is rewritten atomically from it, sorted by path; ``read_manifest`` refuses one damaged
later (cut mid-row). ``.align_run.json`` records the last complete run (source folder, ``limit``,
number of sources) so that ``check_folder`` can tell a complete folder from one that is not. Journals
and manifests of older versions (fewer columns) stay readable.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.files import NO_FACE, OK, UNREADABLE, LoadedImage, atomic_write_text, file_digest, list_images, update_text
from .alignlock import lock_owner

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
OLD_COLUMNS = (["path", "output", "status", "message", "score", "n_faces", "width", "height", "x1", "y1", "x2", "y2"]
               + [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")])  # journals/manifests before padded/size/mtime
# padded: the face was found by the detector's retry on the padded image; src_size/src_mtime_ns: the source's stat
V2_COLUMNS = OLD_COLUMNS + ["padded", "src_size", "src_mtime_ns"]
COLUMNS = V2_COLUMNS + ["src_sha1"]  # the source's content: a new mtime over the same bytes is not a change
JOURNAL, MANIFEST, CONFIG, RUN = ".align_journal.csv", "manifest.csv", "align_config.json", ".align_run.json"


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
        row = _padded(row)
        if len(row) == len(COLUMNS) and row[2] in (OK, NO_FACE, UNREADABLE):
            rows.append(row)
    return rows


def _padded(row: list[str]) -> list[str]:
    """A row of an older journal or manifest with the columns it lacks empty (source stat/digest unknown)."""
    return row + [""] * (len(COLUMNS) - len(row)) if len(row) in (len(OLD_COLUMNS), len(V2_COLUMNS)) else row


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


def source_unchanged(row: list[str], src: Path) -> bool:
    """Whether a row's source is still the one journalled: the same size and mtime (when recorded), or
    else the same bytes (when their SHA-1 is recorded). A new mtime over the same bytes is written into
    ``row``, so the next check is a stat again."""
    size, mtime, sha1 = row[-3:]
    if size:
        now = source_stat(src / row[0])
        if now != (size, mtime):
            if not (sha1 and now[0] == size and source_sha1(src / row[0]) == sha1):
                return False
            row[-2] = now[1]
    return True


def still_valid(row: list[str], src: Path, dst: Path) -> bool:
    """A journal row stands unless its source changed (``source_unchanged``) or its crop is gone."""
    return source_unchanged(row, src) and (row[2] != OK or (dst / row[1]).is_file())


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


def write_manifest(dst: Path, paths: list[str], run: dict) -> pd.DataFrame:
    """Rewrite ``dst/manifest.csv`` (sorted by path) from the journal's rows of ``paths`` and return it;
    ValueError when a path has no row or two rows share a crop (then ``run``, the run's source folder,
    limit and number of sources, is not recorded as complete)."""
    keep = set(paths)
    rows = sorted((r for r in last_per_path(read_journal(dst / JOURNAL)) if r[0] in keep), key=lambda r: r[0])
    update_text(dst / MANIFEST, ",".join(COLUMNS) + "\n" + rows_text(rows))
    problem = _crop_problem(dst, rows) or _coverage_problem(rows, paths)
    if problem:
        raise ValueError(f"the alignment into {dst} did not complete: {problem}; run it again")
    text = json.dumps(run, indent=1)
    if not (dst / RUN).is_file() or (dst / RUN).read_text() != text:
        atomic_write_text(dst / RUN, text)
    return read_manifest(dst)


def check_folder(dst: str | os.PathLike, src: str | os.PathLike | None = None) -> pd.DataFrame:
    """The manifest of a complete, consistent aligned folder; ValueError naming the first problem
    otherwise: a run in progress, a damaged manifest, two rows on one crop, a missing crop, a row other
    than the journal's, fewer rows than the last run's sources, or (``src``, default: the last run's
    source folder, where it still exists) a source without a row, a row without a source, a changed source."""
    dst = Path(dst)
    if (pid := lock_owner(dst)) is not None:
        raise ValueError(f"{dst} is being aligned now (pid {pid or 'unknown'}); check it when that run has ended")
    manifest = read_manifest(dst)
    rows = [_padded(r) for r in list(csv.reader(io.StringIO((dst / MANIFEST).read_text())))[1:]]
    run = json.loads((dst / RUN).read_text()) if (dst / RUN).is_file() else {}
    src = Path(src) if src else Path(run["src"]) if run.get("src") and Path(run["src"]).is_dir() else None
    problem = _crop_problem(dst, rows) or _journal_problem(dst, rows)
    if not problem and run and len(rows) != run.get("sources"):
        problem = f"{len(rows)} rows, but its last complete run listed {run.get('sources')} sources"
    if not problem and src is not None:
        paths = list_images(src)[:run.get("limit")]
        changed = [r[0] for r in rows if (src / r[0]).is_file() and not source_unchanged(r, src)]
        problem = _coverage_problem(rows, paths) or (changed and f"{len(changed)} sources changed since "
                                                               f"they were aligned (first: {changed[0]})")
    if problem:
        raise ValueError(f"{dst / MANIFEST}: {problem}; rerun the alignment into {dst}")
    return manifest


def _crop_problem(dst: Path, rows: list[list[str]]) -> str:
    held = Counter(r[1] for r in rows if r[2] == OK)
    shared = [o for o, n in held.items() if n > 1]
    missing = [o for o in held if not (dst / o).is_file()]
    if shared:
        return f"{len(shared)} crops are the output of more than one row (first: {shared[0]})"
    return f"{len(missing)} crops it names are missing (first: {missing[0]})" if missing else ""


def _coverage_problem(rows: list[list[str]], paths: list[str]) -> str:
    have, listed = {r[0] for r in rows}, set(paths)
    lost, extra = [p for p in paths if p not in have], [r[0] for r in rows if r[0] not in listed]
    if lost:
        return f"{len(lost)} of {len(paths)} sources have no row (first: {lost[0]})"
    return f"{len(extra)} rows name no source (first: {extra[0]})" if extra else ""


def _journal_problem(dst: Path, rows: list[list[str]]) -> str:
    """Rows that are not the journal's latest for their path: a later run did not finish (no journal: unknown)."""
    journal = {r[0]: r for r in read_journal(dst / JOURNAL)}
    stale = [r[0] for r in rows if journal and journal.get(r[0]) != r]
    return f"{len(stale)} rows differ from the journal (first: {stale[0]}): a later run did not finish" if stale else ""


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
