"""Which files a facecore cache may delete: only entries it wrote and can prove are its own.

A cache folder is facecore's when it holds the marker ``.facecore-cache.json`` (its kind and key
scheme), which is written only into a folder facecore creates or finds empty. An entry is a regular
file (not a link) named by the key scheme, ``<tag>/<key[:2]>/<key>.npz``: ``tag`` one folder name (model,
detector and settings), ``key`` the 40 hex digits of the SHA-1 of the photo's bytes. A folder without
the marker (made by an older facecore, or a user's folder given as the cache), a marker of another
kind and any file not named by the scheme are read and added to, never deleted.

Pruning is for caches of kind ``gallery``: each build records the keys it uses in a reference list,
``.refs/<id>.json``, one per (gallery folder, tag); entries that no reference list names are deleted,
and a reference list not refreshed for ``REFS_TTL_DAYS`` expires. So two galleries, or two models,
sharing one cache keep each other's entries; a gallery or model unused for that long is pruned by the
next build. (Two builds at the same moment may delete an entry the other has just written and not yet
recorded: it is embedded again by that gallery's next build.)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Iterator

from .files import atomic_write_text, regular_file

MARKER, REFS = ".facecore-cache.json", ".refs"
SCHEME = "<tag>/<sha1[:2]>/<sha1>.npz"
REFS_TTL_DAYS = 30
_KEY = re.compile(r"[0-9a-f]{40}")
_REF_NAME = re.compile(r"[0-9a-f]{16}\.json")


def cache_kind(root: str | os.PathLike) -> str | None:
    """The kind the marker of ``root`` records, or None (no marker, a damaged one, another key scheme)."""
    marker = Path(root) / MARKER
    if not regular_file(marker):
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) and data.get("scheme") == SCHEME else None


def claim(root: str | os.PathLike, kind: str) -> bool:
    """Whether ``root`` is a facecore cache of ``kind``: marked so, or absent or empty and now marked so
    (created). A folder holding anything else, or marked with another kind, is not claimed."""
    root = Path(root)
    try:
        if not root.exists():
            root.mkdir(parents=True, exist_ok=True)
        elif not root.is_dir() or cache_kind(root) is not None or _scan(root):
            return cache_kind(root) == kind
        atomic_write_text(root / MARKER, json.dumps({"kind": kind, "scheme": SCHEME, "by": "facecore"}, indent=1))
    except (OSError, ValueError):
        return False
    return True


def entries(root: str | os.PathLike) -> Iterator[tuple[Path, str, str]]:
    """(path, tag, key) of every file of ``root`` named by the key scheme; links are neither followed nor listed."""
    for tag in _dirs(Path(root)):
        for sub in _dirs(tag):
            for f in _scan(sub):
                key = f.name[:-4]
                named = f.name.endswith(".npz") and _KEY.fullmatch(key) and key[:2] == sub.name
                if named and f.is_file(follow_symlinks=False):
                    yield Path(f.path), tag.name, key


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []


def _dirs(folder: Path) -> list[Path]:
    return [Path(e.path) for e in _scan(folder) if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]


def prune(root: str | os.PathLike, scope: str, tag: str, keep: list[str | None] | set[str]) -> list[Path]:
    """Record ``keep`` (the keys ``scope``, e.g. a gallery folder, uses under ``tag``) and delete the entries
    of the gallery cache ``root`` that no live reference list names. Returns the deleted paths; deletes
    nothing in a folder that is not a claimed gallery cache (``claim``)."""
    root = Path(root)
    if cache_kind(root) != "gallery":
        return []
    ref = root / REFS / (hashlib.sha1(f"{scope}|{tag}".encode()).hexdigest()[:16] + ".json")
    try:
        atomic_write_text(ref, json.dumps({"scope": scope, "tag": tag, "keys": sorted({k for k in keep if k})}))
    except (OSError, ValueError) as e:
        warnings.warn(f"cache {root}: could not record what it holds ({e}); nothing pruned", UserWarning)
        return []
    live = _live_refs(root / REFS)
    gone = []
    for path, t, key in entries(root):
        if (t, key) not in live:
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def _live_refs(folder: Path) -> set[tuple[str, str]]:
    """(tag, key) named by the reference lists of ``folder``; those older than ``REFS_TTL_DAYS`` are deleted."""
    live, oldest = set(), time.time() - REFS_TTL_DAYS * 86400
    for f in _scan(folder):
        path = Path(f.path)
        if not (_REF_NAME.fullmatch(f.name) and regular_file(path)):
            continue
        if path.stat().st_mtime < oldest:
            path.unlink(missing_ok=True)
            continue
        try:
            data = json.loads(path.read_text())
            live.update((str(data["tag"]), str(k)) for k in data["keys"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # damaged: rewritten by its gallery's next build
    return live
