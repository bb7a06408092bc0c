"""Where the project, its data and its outputs live (the base layer: imports nothing from facecore)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # facecore/core/paths.py -> the checkout


class DataMissingError(FileNotFoundError):
    """A data set the caller needs is not on this machine."""


def project_path(p: str | os.PathLike) -> Path:
    """A path relative to the project root when running from a checkout, else to the current folder (an
    installed facecore never reads or writes beside its code); absolute paths pass through."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT if in_checkout() else Path.cwd()) / p


def in_checkout() -> bool:
    """Whether facecore runs from a source checkout (editable install or PYTHONPATH), not an installed copy."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "notebooks").is_dir()


def cache_root() -> Path:
    """Where facecore keeps what it can recompute (gallery embeddings, aligned evaluation crops):
    ``$FACECORE_CACHE``; else ``cache/`` in the checkout when running from one (git-ignored, where the
    notebooks' ``cache/...`` parameters point); else the per-user cache folder,
    ``$XDG_CACHE_HOME/facecore`` or ``~/.cache/facecore``. Never inside an installed package."""
    env = os.environ.get("FACECORE_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    if in_checkout():
        return PROJECT_ROOT / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "facecore"


def user_models_dir() -> Path:
    """The per-user folder for shipped models that are not in the package:
    ``$XDG_DATA_HOME/facecore/models`` or ``~/.local/share/facecore/models``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "facecore" / "models"


class _UserCache:
    """Default of ``cache_dir`` arguments: a folder of ``cache_root()``, resolved when it is used (so
    ``FACECORE_CACHE`` set after import counts)."""

    def __repr__(self) -> str:
        return "<facecore cache>"


USER_CACHE = _UserCache()


def cache_path(cache_dir, sub: str) -> Path | None:
    """``cache_dir`` as a Path (None: no cache); ``USER_CACHE`` is ``cache_root() / sub``."""
    if cache_dir is USER_CACHE:
        return cache_root() / sub
    return None if cache_dir is None else Path(cache_dir)


def data_root() -> Path:
    """``$FACECORE_DATA``, or ``../shared/data`` beside the project root."""
    env = os.environ.get("FACECORE_DATA")
    return Path(env).expanduser().resolve() if env else (PROJECT_ROOT.parent / "shared" / "data").resolve()


def work_root() -> Path:
    """``$FACECORE_WORK``, or ``../facecore-data`` beside the project root: large staged training sets,
    their aligned crops and long training runs, kept outside the project."""
    env = os.environ.get("FACECORE_WORK")
    return Path(env).expanduser().resolve() if env else (PROJECT_ROOT.parent / "facecore-data").resolve()


def data_path(*parts: str, must_exist: bool = True) -> Path:
    """A path inside the data root; raises DataMissingError naming what to do when it is absent."""
    p = data_root().joinpath(*parts)
    if must_exist and not p.exists():
        raise DataMissingError(
            f"{p} not found. Set FACECORE_DATA to the folder holding lfw/, celeba-crops/, "
            f"landmarks-300w/ and demo/ (default ../shared/data); docs/data.md says "
            f"where to download each data set."
        )
    return p


def has_data(*parts: str) -> bool:
    return data_root().joinpath(*parts).exists()
