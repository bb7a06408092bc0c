"""A distillation teacher's embeddings as a table, for training where the teacher is not installed.

Where the teacher runs, write the table of the aligned crop folders the training will read::

    python -m facecore.training.teacher_table teacher.npz DATA_DIR UNLABELLED_DIR [--teacher dlib]

Where it does not, train with ``teacher="table", teacher_kwargs={"path": "teacher.npz"}``
(``create_teacher("table", path=...)``): crops are looked up as ``<folder name>/<path in the folder>``,
so the folders keep their names (``NAME=DIR`` names one differently) and their layout.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..core.files import atomic_write_bytes
from ..core.paths import project_path
from .distill import scan_unlabelled, teacher_targets
from .teachers import create_teacher

TABLE = "teacher.npz"


def table_keys(name: str, paths: list[str], suffix: str | None = None) -> list[str]:
    """The table's key of each crop of folder ``name``: ``<name>/<path>`` (``suffix``: the path's new suffix)."""
    return [f"{name}/{(Path(p).with_suffix(suffix) if suffix else Path(p)).as_posix()}" for p in paths]


def write_table(roots: dict[str, str | os.PathLike], dst: str | os.PathLike, teacher,
                cache_dir: str | os.PathLike | None = None, progress: bool = True, suffix: str | None = None) -> dict:
    """Write ``dst`` (``.npz``): ``paths`` (keys of every crop under each of ``roots``, {name: folder}),
    fp16 unit ``embeddings`` of ``teacher`` (computed, or read from its cache in ``cache_dir``) and the
    teacher's ``cache_key``, atomically. ``suffix``: the crops are re-encoded under that suffix where the
    table is read. Returns the crop count and the file's size."""
    keys, targets = [], []
    for name, root in roots.items():
        fs = scan_unlabelled(root)
        targets.append(teacher_targets(fs, teacher, cache_dir, progress))
        keys += table_keys(name, fs.paths, suffix)
    if len(set(keys)) != len(keys):
        raise ValueError("teacher table: two crops map to the same key (same folder name, or same path but "
                         "for the extension); name the folders apart with NAME=DIR")
    buf = io.BytesIO()
    np.savez_compressed(buf, paths=np.array([k.encode() for k in keys]),  # names compress well, fp16 does not
                        embeddings=np.concatenate(targets).astype(np.float16),
                        teacher=np.array(str(getattr(teacher, "cache_key", teacher.name))))
    atomic_write_bytes(dst, buf.getvalue())
    return {"crops": len(keys), "mib": Path(dst).stat().st_size / 2**20}


def parse_roots(items: list[str]) -> dict[str, str]:
    """``DIR`` (named by its folder name) or ``NAME=DIR`` -> {name: folder}."""
    roots = dict(r.split("=", 1) if "=" in r else (Path(r).name, r) for r in items)
    if len(roots) != len(items):
        raise ValueError(f"two folders share a name in {items}; name them apart with NAME=DIR")
    missing = [d for d in roots.values() if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"no folder {missing[0]} (an aligned crop folder the training reads)")
    return roots


def add_table_arguments(ap: argparse.ArgumentParser) -> None:
    """The command-line arguments of a table: its crop folders, the teacher and the teacher's cache."""
    ap.add_argument("roots", nargs="+", metavar="DIR|NAME=DIR", help="aligned crop folders the training reads")
    ap.add_argument("--teacher", default="dlib")
    ap.add_argument("--framing", default="ours", help="dlib teacher: ours or dlib")
    ap.add_argument("--cache_dir", default="cache/crops/teacher", help="the teacher cache of the training runs")


def table_inputs(a: argparse.Namespace) -> tuple[dict[str, str], object, Path]:
    """(crop folders by name, the teacher, its cache folder) from ``add_table_arguments``' arguments;
    the folders are checked before the teacher is built."""
    roots = parse_roots(a.roots)
    teacher = create_teacher(a.teacher, **({"framing": a.framing} if a.teacher == "dlib" else {}))
    return roots, teacher, project_path(a.cache_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m facecore.training.teacher_table DST DIR|NAME=DIR ... [--teacher dlib] [--framing ours]``"""
    ap = argparse.ArgumentParser(prog="python -m facecore.training.teacher_table", description=__doc__.split("\n\n")[0])
    ap.add_argument("dst", help="the table to write, e.g. teacher.npz")
    add_table_arguments(ap)
    a = ap.parse_args(argv)
    try:
        roots, teacher, cache_dir = table_inputs(a)
        print(json.dumps(write_table(roots, a.dst, teacher, cache_dir)))
    except (ValueError, FileNotFoundError) as e:
        print(f"python -m facecore.training.teacher_table: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
