"""Where caches go: $FACECORE_CACHE, else the checkout's cache/ when running from one, else the per-user
cache folder; never inside an installed package."""
from __future__ import annotations

from pathlib import Path

from facecore.core import paths


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.delenv("FACECORE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert paths.in_checkout() and paths.cache_root() == paths.PROJECT_ROOT / "cache"  # the tests run in one
    monkeypatch.setenv("FACECORE_CACHE", str(tmp_path / "c"))
    assert paths.cache_root() == tmp_path / "c"
    assert paths.cache_path(paths.USER_CACHE, "gallery") == tmp_path / "c" / "gallery"  # read when used
    assert paths.cache_path(None, "gallery") is None and paths.cache_path("x", "gallery") == Path("x")
    monkeypatch.delenv("FACECORE_CACHE")
    site = tmp_path / "site-packages"  # an installed copy: no pyproject.toml, no notebooks/ beside the package
    (site / "facecore").mkdir(parents=True)
    monkeypatch.setattr(paths, "PROJECT_ROOT", site)
    assert not paths.in_checkout()
    assert paths.cache_root() == Path.home() / ".cache" / "facecore"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == tmp_path / "xdg" / "facecore"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert paths.user_models_dir() == tmp_path / "share" / "facecore" / "models"


def test_relative_paths_resolve_against_the_checkout_only_in_one(monkeypatch, tmp_path):
    assert paths.project_path("runs/x") == paths.PROJECT_ROOT / "runs" / "x"
    assert paths.project_path(tmp_path / "y") == tmp_path / "y"
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path / "site-packages")  # installed: the current folder
    monkeypatch.chdir(tmp_path)
    assert paths.project_path("runs/x") == tmp_path / "runs" / "x"
