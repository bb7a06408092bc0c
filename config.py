"""Project configuration for the notebooks: the shipped models by name.

The table itself lives in the package (``facecore/core/zoo_table.py``), so that facecore never imports a
module named ``config`` (a user's own ``config.py`` cannot shadow it); this module re-exports it for the
notebooks and scripts of the checkout: ``params`` (name -> checkpoint path relative to the project root),
``sha256`` (name -> the checkpoint's SHA-256) and ``DEFAULT_MODEL``; read paths through ``shipped(name)``
or ``checkpoint_path(name)``, which also find the files kept outside the checkout (``facecore.core.zoo``).
"""
from __future__ import annotations

from pathlib import Path

from facecore.core import zoo_table
from facecore.core.zoo import checkpoint_path, shipped  # noqa: F401 - re-exported for the notebooks

ROOT = Path(__file__).resolve().parent


def __getattr__(name: str):
    """``params``, ``sha256`` and ``DEFAULT_MODEL``, read from the package's table at each access (so a
    hash that ``facecore.core.zoo.record_hash`` rewrites is seen at once)."""
    if name in ("params", "sha256", "DEFAULT_MODEL"):
        return getattr(zoo_table, name)
    raise AttributeError(f"module 'config' has no attribute {name!r}")
