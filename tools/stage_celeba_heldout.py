"""Stage the CelebA identities held back from training, for threshold calibration and evaluation.

    python tools/stage_celeba_heldout.py GIT_DIR OUT [--crops DIR] [--ids FILE]

GIT_DIR  a bare git directory of ShaharKSegal/CelebA_Samples holding commit 2a68dac5 (5 aligned 178x218
         photos per identity in ``celeba_identity_samples/``, files ``<identity>_<celeba file>``).
OUT      written as ``OUT/<identity>/<celeba file>.jpg``, held-out identities only; keep it outside
         the project (e.g. ``$FACECORE_WORK/celeba-heldout``).
--crops  a ``celeba-crops/<identity>/<celeba file>.jpg`` folder whose held-out photos are added (the same
         CelebA file is kept once).
--ids    the held-out identity list, one a line (default: ``celeba_heldout_ids.txt`` in the ``tools``
         folder beside ``$FACECORE_DATA``, where the training-set staging tool reads it).

The training-set staging tool never writes these identities, so no model trained on its output has
seen them. Writes into ``OUT.partial`` and renames at the end; an existing OUT is left alone.
Bad input: one line on stderr, exit 2. Research use only (CelebA's terms).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from facecore.core.paths import data_root

COMMIT = "2a68dac53f1a175a4716f615d7f096c8a6122482"
FOLDER = "celeba_identity_samples"


class StageError(Exception):
    """Bad input: the message is the one line printed."""


def read_ids(path: Path) -> set[str]:
    """The held-out identities listed in ``path`` (whitespace separated)."""
    if not path.is_file():
        raise StageError(f"--ids {path}: no such file (the held-out identity list, one identity a line)")
    ids = set(path.read_text().split())
    if not ids:
        raise StageError(f"--ids {path}: lists no identity")
    return ids


def sample_blobs(git_dir: Path, commit: str, held: set[str]) -> dict[str, list[tuple[str, str]]]:
    """Held-out identity -> [(celeba file, blob id)] of the sample photos at ``commit``."""
    git = ["git", f"--git-dir={git_dir}"]
    if not git_dir.is_dir() or subprocess.run(git + ["cat-file", "-e", f"{commit}^{{commit}}"],
                                              capture_output=True).returncode:
        raise StageError(f"GIT_DIR {git_dir}: not a git directory holding commit {commit[:8]} of "
                         "ShaharKSegal/CelebA_Samples (give the bare clone's git directory)")
    ls = subprocess.run(git + ["ls-tree", "-r", commit, f"{FOLDER}/"], capture_output=True, text=True)
    if ls.returncode or not ls.stdout.strip():
        raise StageError(f"GIT_DIR {git_dir}: commit {commit[:8]} has no {FOLDER}/ folder")
    out: dict[str, list[tuple[str, str]]] = {}
    for line in ls.stdout.splitlines():
        info, name = line.split("\t", 1)
        ident, _, fname = Path(name).name.partition("_")
        if ident in held and fname:
            out.setdefault(ident, []).append((fname, info.split()[2]))
    return out


def write_blobs(git_dir: Path, blobs: dict[str, list[tuple[str, str]]], dst: Path) -> int:
    """Write every blob as ``dst/<identity>/<file>`` in one ``git cat-file --batch`` pass; the count."""
    jobs = [(dst / ident / fname, oid) for ident, files in sorted(blobs.items()) for fname, oid in sorted(files)]
    proc = subprocess.Popen(["git", f"--git-dir={git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    proc.stdin.write("".join(f"{oid}\n" for _, oid in jobs).encode())
    proc.stdin.close()
    for path, oid in jobs:
        header = proc.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise StageError(f"GIT_DIR {git_dir}: object {oid} of {path.name} is missing or not a file")
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)  # the newline after each object
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    proc.wait()
    return len(jobs)


def add_crops(crops: Path, held: set[str], dst: Path) -> int:
    """Copy the held-out identities' photos of a celeba-crops folder not already in ``dst``; the count."""
    added = 0
    for ident in sorted(held):
        for f in sorted((crops / ident).glob("*.jpg")) if (crops / ident).is_dir() else []:
            if not (dst / ident / f.name).exists():
                (dst / ident).mkdir(exist_ok=True)
                shutil.copyfile(f, dst / ident / f.name)
                added += 1
    return added


def stage(git_dir: Path, out: Path, crops: Path | None, ids: Path, commit: str = COMMIT) -> str:
    """Stage the held-out identities into ``out`` (via ``out.partial``); the summary line."""
    if out.exists():
        return f"{out} exists; left alone (delete it to stage again)"
    if crops is not None and not crops.is_dir():
        raise StageError(f"--crops {crops}: no such folder (a celeba-crops/<identity>/<file>.jpg tree)")
    held = read_ids(ids)
    blobs = sample_blobs(git_dir, commit, held)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = write_blobs(git_dir, blobs, tmp)
    added = add_crops(crops, held, tmp) if crops is not None else 0
    n_ids = sum(1 for d in tmp.iterdir() if d.is_dir())
    os.replace(tmp, out)
    return (f"{n + added} photos of {n_ids} held-out identities -> {out} ({added} from {crops}; "
            f"{len(held) - n_ids} of the {len(held)} listed have no photo)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("git_dir")
    p.add_argument("out")
    p.add_argument("--crops", default=None, help="a celeba-crops folder whose held-out photos are added")
    p.add_argument("--ids", default=None, help="held-out identity list (default: celeba_heldout_ids.txt "
                                               "in the tools folder beside $FACECORE_DATA)")
    p.add_argument("--commit", default=COMMIT, help=argparse.SUPPRESS)  # tests stage from their own repository
    a = p.parse_args(argv)
    ids = Path(a.ids) if a.ids else data_root().parent / "tools" / "celeba_heldout_ids.txt"
    try:
        print(stage(Path(a.git_dir), Path(a.out), Path(a.crops) if a.crops else None, ids, a.commit))
    except StageError as e:
        print(f"stage_celeba_heldout: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
