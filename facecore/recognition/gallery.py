"""The gallery of enrolled people: photos in ``people_faces/`` -> one unit embedding per person.

Layouts (both may be mixed, and a name may use both): a folder per person,
``people_faces/<Name>/*.jpg|png|...``, or a flat file per person, ``people_faces/<Name>.jpg``.
Hidden files are skipped; a person folder without a photo facecore reads (empty, or only e.g.
``.heic``/``.gif`` files) is named in a warning. Each photo goes through the one embedding path
(``facecore.evaluation.embed.embed_files``: detect -> align -> embed, flip-averaged), cached on disk by model
detector and file contents, so a rebuild embeds only new or changed photos; a damaged cache entry is
recomputed (with a warning). The cache deletes only its own entries that no gallery still uses
(``facecore.core.cache``: galleries sharing a cache keep each other's). A person's photos are combined
into the mean of their unit embeddings, renormalised (a template); a query is matched to the
person of highest cosine similarity. A photo with no face, an unreadable photo, or one with several
faces (the centre-largest face is used) is reported by name as a warning, never an error.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.cache import claim
from ..core.files import IMAGE_EXTENSIONS, NO_FACE, OK, UNREADABLE
from ..core.paths import USER_CACHE, cache_path
from ..core.paths import PROJECT_ROOT
from ..evaluation.embed import embed_files, prune_cache
from ..networks.models import Embedder
from .tracking import UNKNOWN

DEFAULT_CACHE_DIR = USER_CACHE  # gallery/ in facecore.core.paths.cache_root(), resolved when used


@dataclass
class Gallery:
    """Enrolled people: ``embeddings[i]`` is the unit template of ``names[i]``."""

    names: list[str]
    embeddings: np.ndarray
    n_photos: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def match(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the most similar person per unit query embedding (-1 if none) and the cosine."""
        q = np.asarray(queries, np.float32).reshape(len(queries), -1)
        if len(self) == 0 or len(q) == 0:
            return np.full(len(q), -1, np.int64), np.full(len(q), np.nan, np.float32)
        sim = q @ self.embeddings.T
        idx = sim.argmax(axis=1)
        return idx, sim[np.arange(len(q)), idx]

    def label(self, queries: np.ndarray, threshold: float) -> list[tuple[str, float]]:
        """(name, similarity) per query; ``Unknown`` where the best similarity is below ``threshold``."""
        idx, sim = self.match(queries)
        return [(self.names[i] if i >= 0 and s >= threshold else UNKNOWN, float(s)) for i, s in zip(idx, sim)]


def find_people(root: str | os.PathLike) -> dict[str, list[Path]]:
    """Photos per person name under ``root`` (folder-per-person and flat-file layouts), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"people_faces folder {root} not found (one folder or photo per person)")
    people: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            photos = [p for p in sorted(entry.rglob("*")) if _is_image(p) and not _hidden(p, entry)]
            if photos:
                people.setdefault(entry.name, []).extend(photos)
        elif _is_image(entry):
            people.setdefault(entry.stem, []).append(entry)
    return {name: sorted(set(photos)) for name, photos in sorted(people.items())}


def skipped_people(root: str | os.PathLike) -> list[str]:
    """One line per person folder under ``root`` that holds no photo ``find_people`` takes (empty, or
    only files of other types, e.g. ``.heic``/``.gif``), naming what it holds."""
    out = []
    for entry in sorted(Path(root).iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        files = [p for p in sorted(entry.rglob("*")) if not _hidden(p, entry) and p.is_file()]
        if not any(_is_image(p) for p in files):
            held = ", ".join(p.relative_to(entry).as_posix() for p in files[:5]) + (", ..." if len(files) > 5 else "")
            out.append(f"{entry}: no photo of a type facecore reads ({', '.join(IMAGE_EXTENSIONS)}), "
                       f"{'it holds no visible file' if not files else 'it holds ' + held}; {entry.name} not enrolled")
    return out


def build_gallery(root: str | os.PathLike, embedder: Embedder, detector=None,
                  cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR, progress: bool = False) -> Gallery:
    """Embed every person's photos (cached) and combine them into one template per person.

    ``detector``: an object, a registered name or None (MTCNN, ``facecore.detection.detectors``). The cache is
    keyed by contents; by default it is ``gallery/`` in ``facecore.core.paths.cache_root()`` (None: no cache).
    A new or empty ``cache_dir`` becomes a gallery cache, whose entries no gallery uses any more (photos
    removed or replaced) are deleted (``facecore.core.cache``).

    Problems (no face, several faces, unreadable, a person folder or person with no usable photo, an
    empty gallery) are collected in ``Gallery.problems`` and issued as ``UserWarning``s.
    """
    cache_dir = cache_path(cache_dir, "gallery")
    people = find_people(root)
    paths = [p for photos in people.values() for p in photos]
    if cache_dir is not None:
        claim(cache_dir, "gallery")  # before embed_files, which would mark a new folder as a plain cache
    emb = embed_files(paths, embedder, detector=detector, cache_dir=cache_dir, flip=True, progress=progress)
    if cache_dir is not None:
        prune_cache(cache_dir, str(Path(root).resolve()), emb)  # photos removed or replaced since the last build
    names, templates, counts, problems = [], [], [], skipped_people(root)
    row = 0
    for name, photos in people.items():
        rows = range(row, row + len(photos))
        row += len(photos)
        for i in rows:
            problems += _photo_problem(paths[i], emb.status[i], emb.n_faces[i])
        good = [i for i in rows if emb.status[i] == OK]
        if not good:
            problems.append(f"{name}: no usable photo, not enrolled")
            continue
        t = emb.embeddings[good].mean(axis=0)
        names.append(name)
        templates.append(t / max(float(np.linalg.norm(t)), 1e-12))
        counts.append(len(good))
    if not names:
        problems.append(f"no enrolled people in {root}: every face will be labelled {UNKNOWN}")
    dim = int(embedder.meta.get("embedding_dim", emb.embeddings.shape[1]))
    arr = np.stack(templates).astype(np.float32) if templates else np.zeros((0, dim), np.float32)
    for msg in problems:
        warnings.warn(msg, UserWarning, stacklevel=2)
    return Gallery(names, arr, counts, problems)


def _photo_problem(path: str, status: str, n_faces: int) -> list[str]:
    if status == NO_FACE:
        return [f"{path}: no face found, photo skipped"]
    if status == UNREADABLE:
        return [f"{path}: unreadable image, photo skipped"]
    if status == OK and n_faces > 1:
        return [f"{path}: {n_faces} faces found, enrolled the centre-largest one"]
    return []


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in p.relative_to(root).parts)
