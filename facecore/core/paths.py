"""Where the project, its data and its outputs live (the base layer: imports nothing from facecore)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # facecore/core/paths.py -> the checkout


class DataMissingError(FileNotFoundError):
    """A data set the caller needs is not on this machine."""


def project_path(p: str | os.PathLike) -> Path:
    """A path relative to the project root (absolute paths pass through)."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


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
            f"landmarks-300w/ and demo/ (default ../shared/data); README.md, section 'Data', says "
            f"where to download each data set."
        )
    return p


def has_data(*parts: str) -> bool:
    return data_root().joinpath(*parts).exists()
