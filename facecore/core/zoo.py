"""The shipped models of ``config.py`` and their integrity: each file's SHA-256 is recorded beside its
name, checked when it is loaded, and rewritten when a new version is exported over it."""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from .files import atomic_write_text, file_digest
from .paths import PROJECT_ROOT


def shipped_models() -> dict[str, tuple[Path, str | None]]:
    """name -> (absolute checkpoint path, recorded SHA-256 or None), read through ``config.shipped``."""
    import config

    return {name: config.shipped(name) for name in config.params}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digest(path)


def shipped_name(path: str | os.PathLike) -> str | None:
    """The config name whose checkpoint is ``path``, or None when it is not a shipped model."""
    target = Path(path).resolve()
    return next((n for n, (p, _) in shipped_models().items() if p.resolve() == target), None)


def verify_shipped(path: str | os.PathLike) -> bool:
    """When ``path`` is a shipped model, check its SHA-256 against ``config.sha256``; a mismatch
    raises naming the file and how to restore it. Returns whether the file was checked (other paths
    pass unchecked)."""
    name = shipped_name(path)
    if name is None:
        return False
    expected = shipped_models()[name][1]
    if expected is None:
        return False
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path} (shipped model {name!r}) has SHA-256 {actual[:12]}..., config.py records "
                         f"{expected[:12]}...: the file is damaged or stale - restore it (git checkout {path}, "
                         f"or git lfs pull), or after re-exporting it on purpose record the new hash with "
                         f"facecore.core.zoo.record_hash")
    return True


_LINE = r'^(\s*"{name}"\s*:\s*")[0-9a-f]*(",?)'


def record_hash(path: str | os.PathLike, config_file: str | os.PathLike | None = None) -> tuple[str | None, str]:
    """(config name, SHA-256) of ``path``; when it is a shipped model, its ``sha256`` line in
    ``config.py`` is rewritten (atomically) and ``config`` reloaded, and the change is printed. A new
    model under ``notebooks/`` gets its hash printed, to be added to config.py with its name."""
    digest = sha256_file(path)
    name = shipped_name(path)
    if name is None:
        if Path(path).resolve().is_relative_to(PROJECT_ROOT / "notebooks"):
            print(f"{path}: SHA-256 {digest}; to ship it, add it to config.params and this hash to config.sha256")
        return None, digest
    cfg = Path(config_file) if config_file else PROJECT_ROOT / "config.py"
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
    _reload_config()
    print(f"config.py: sha256[{name!r}] = {digest}")
    return name, digest


def _reload_config() -> None:
    import config

    importlib.reload(config)
