"""The shipped models (``facecore.core.zoo_table``) and their integrity: each file's SHA-256 is recorded beside
its name, checked when it is loaded, and rewritten when a new version is exported over it.

Where a shipped model's file is looked for, first found wins (``model_dirs``): its path in the
checkout, or in the installed package for the default model's weights (``facecore/weights/``); then
``$FACECORE_MODELS``, a folder holding the file (``<name>.pt``) or a facecore checkout (the same
relative path); then the per-user folder ``~/.local/share/facecore/models`` (``$XDG_DATA_HOME``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from . import zoo_table
from .files import atomic_write_text, file_digest
from .paths import PROJECT_ROOT, in_checkout, user_models_dir

TABLE_FILE = Path(zoo_table.__file__)
BESIDE = "the checkout, or the installed package"  # PROJECT_ROOT: the checkout or the folder holding the package


class ModelNotFoundError(FileNotFoundError):
    """A shipped model whose file is in none of the places looked in (the message lists them)."""


def model_dirs() -> list[tuple[Path, str]]:
    """(folder, how it was chosen) where shipped models are looked for, in order."""
    dirs = [(PROJECT_ROOT, BESIDE)]
    env = os.environ.get("FACECORE_MODELS")
    if env:
        dirs.append((Path(env).expanduser(), "$FACECORE_MODELS"))
    return dirs + [(user_models_dir(), "per-user models folder")]


def candidates(name: str) -> list[Path]:
    """Every path where the file of shipped model ``name`` is looked for, in order."""
    rel = Path(_entry(name))
    out = []
    for folder, how in model_dirs():  # a models folder holds <name>.pt, or is a checkout: the same path
        for p in (folder / rel,) if how == BESIDE else (folder / rel.name, folder / rel):
            if p not in out:
                out.append(p)
    return out


def shipped(name: str) -> tuple[Path, str | None]:
    """(checkpoint path, recorded SHA-256 or None) of a shipped model: the first candidate that exists,
    else its place in the checkout. An unknown name lists the valid ones (KeyError)."""
    paths = candidates(name)
    return next((p for p in paths if p.is_file()), paths[0]), zoo_table.sha256.get(name)


def checkpoint_path(name: str) -> Path:
    """The checkpoint file of shipped model ``name``; ModelNotFoundError lists where it looked."""
    path = shipped(name)[0]
    if not path.is_file():
        looked = "; ".join(f"{p} ({_where(how)})" for p, how in _looked(name))
        env = "" if os.environ.get("FACECORE_MODELS") else " ($FACECORE_MODELS is unset)"
        raise ModelNotFoundError(f"model {name!r}: checkpoint {Path(_entry(name)).name} not found; looked in {looked}"
                                 f"{env}; put the file in {user_models_dir()} or set FACECORE_MODELS to a folder "
                                 "(or a facecore checkout) holding it")
    return path


def shipped_models() -> dict[str, tuple[Path, str | None]]:
    """name -> (checkpoint path, recorded SHA-256 or None), read through ``shipped``."""
    return {name: shipped(name) for name in zoo_table.params}


def _entry(name: str) -> str:
    if name not in zoo_table.params:
        valid = ", ".join(sorted(zoo_table.params)) or "(none shipped yet)"
        raise KeyError(f"unknown model name {name!r}; valid names: {valid}")
    return zoo_table.params[name]


def _looked(name: str) -> list[tuple[Path, str]]:
    rel = Path(_entry(name))
    return [(folder / rel if how == BESIDE else folder, how) for folder, how in model_dirs()]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digest(path)


def shipped_name(path: str | os.PathLike) -> str | None:
    """The shipped model name whose checkpoint is ``path`` (at any of its ``candidates``), or None."""
    target = Path(path).resolve()
    return next((n for n in zoo_table.params if any(p.resolve() == target for p in candidates(n))), None)


def verify_shipped(path: str | os.PathLike) -> bool:
    """When ``path`` is a shipped model, check its SHA-256 against ``zoo_table.sha256``; a mismatch
    raises naming the file and how to restore it. Returns whether the file was checked (other paths
    pass unchecked)."""
    name = shipped_name(path)
    if name is None:
        return False
    expected = zoo_table.sha256.get(name)
    if expected is None:
        return False
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path} (shipped model {name!r}) has SHA-256 {actual[:12]}..., the zoo table records "
                         f"{expected[:12]}...: the file is damaged or stale - restore it (git checkout {path}, "
                         f"or git lfs pull), or after re-exporting it on purpose record the new hash with "
                         f"facecore.core.zoo.record_hash")
    return True


_LINE = r'^(\s*"{name}"\s*:\s*")[0-9a-f]*(",?)'


def record_hash(path: str | os.PathLike, config_file: str | os.PathLike | None = None) -> tuple[str | None, str]:
    """(shipped model name, SHA-256) of ``path``; when it is a shipped model, its ``sha256`` line in
    ``config_file`` (default ``facecore/core/zoo_table.py``) is rewritten (atomically) and the table reloaded,
    and the change is printed. A new model under ``notebooks/`` gets its hash printed, to be added to
    the table with its name."""
    digest = sha256_file(path)
    name = shipped_name(path)
    if name is None:
        if Path(path).resolve().is_relative_to(PROJECT_ROOT / "notebooks"):
            print(f"{path}: SHA-256 {digest}; to ship it, add it to params and this hash to sha256 in {TABLE_FILE}")
        return None, digest
    cfg = Path(config_file) if config_file else TABLE_FILE
    text = cfg.read_text()
    pattern = re.compile(_LINE.format(name=re.escape(name)), re.M)
    if pattern.search(text):
        text = pattern.sub(lambda m: f"{m.group(1)}{digest}{m.group(2)}", text, count=1)
    else:
        text, n = re.subn(r"^(sha256\s*:[^\n]*\{\n)", lambda m: f'{m.group(1)}    "{name}": "{digest}",\n', text,
                          count=1, flags=re.M)
        if n == 0:
            raise ValueError(f"{cfg}: no 'sha256: dict[str, str] = {{' block to record {name!r} in; add it")
    atomic_write_text(cfg, text)
    if cfg.resolve() == TABLE_FILE.resolve():
        zoo_table.sha256[name] = digest  # the table in memory follows the file
    print(f"{cfg.name}: sha256[{name!r}] = {digest}")
    return name, digest


def _where(how: str) -> str:
    return ("checkout" if in_checkout() else "installed package") if how == BESIDE else how
