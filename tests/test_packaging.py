"""The wheel: the package with its subpackages and the default model's weights, declared dependencies
and the console script, no top-level config module; and a user's own config.py never shadows the zoo."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from conftest import ROOT
from facecore.core import zoo, zoo_table

RUNTIME = {"torch", "torchvision", "facenet-pytorch", "efficientnet-pytorch", "opencv-python", "numpy", "pillow",
           "pandas", "matplotlib", "tqdm", "imageio", "imageio-ffmpeg"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from a copy of the checkout's package files (the build leaves build/ and
    *.egg-info beside its sources, so not in the checkout); offline, with this venv's setuptools."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, src / name)
    shutil.copytree(ROOT / "facecore", src / "facecore", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w",
                        str(out)], cwd=src, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (path,) = out.glob("facecore-*.whl")
    with zipfile.ZipFile(path) as z:
        yield z


def _dist_file(z: zipfile.ZipFile, name: str) -> str:
    (entry,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
    return z.read(entry).decode()


def test_wheel_holds_every_module_and_the_default_weights(wheel):
    names = set(wheel.namelist())
    assert {n.split("/")[0] for n in names} <= {"facecore", next(n.split("/")[0] for n in names if ".dist-info/" in n)}
    assert "config.py" not in names and _dist_file(wheel, "top_level.txt").split() == ["facecore"]
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "facecore").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= names, sorted(modules - names)  # subpackages too
    rel = zoo_table.params[zoo_table.DEFAULT_MODEL]
    assert rel.startswith("facecore/weights/") and rel in names
    assert zoo.sha256_file(ROOT / rel) == zoo_table.sha256[zoo_table.DEFAULT_MODEL]
    assert wheel.getinfo(rel).file_size == (ROOT / rel).stat().st_size


def test_wheel_declares_dependencies_and_the_console_script(wheel):
    meta = _dist_file(wheel, "METADATA").splitlines()
    requires = [line.split(":", 1)[1].strip() for line in meta if line.startswith("Requires-Dist:")]
    runtime = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower() for r in requires if ";" not in r}
    assert runtime == RUNTIME
    extras = {r.split("extra ==")[1].strip().strip('"') for r in requires if "extra ==" in r}
    assert {"notebooks", "teachers", "dev"} <= extras
    assert any(r.startswith("papermill") and 'extra == "notebooks"' in r for r in requires)  # not a runtime need
    entry = _dist_file(wheel, "entry_points.txt")
    assert "[console_scripts]" in entry and "facecore-realtime = facecore.recognition.realtime:main" in entry


def test_a_users_config_module_does_not_shadow_the_model_zoo(tmp_path):
    """From a folder whose own config.py has nothing facecore knows, the default model still resolves, and
    facecore never imports a module named config."""
    (tmp_path / "config.py").write_text("DEFAULT_MODEL = 'mine'\nparams = {}\n")
    code = textwrap.dedent("""
        import sys
        from facecore.recognition.recognizer import resolve_checkpoint
        from facecore.core import zoo
        path = resolve_checkpoint()
        assert 'config' not in sys.modules, sys.modules['config']
        import config
        assert config.DEFAULT_MODEL == 'mine' and config.__file__.startswith(sys.argv[1])
        print(path.relative_to(zoo.PROJECT_ROOT).as_posix())
        """)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == zoo_table.params[zoo_table.DEFAULT_MODEL]

