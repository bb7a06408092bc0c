"""Shared fixtures. Tests that need ../shared/data skip without it, except under CI=true."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from facecore.core.paths import data_root  # facecore is installed (editable) into .venv by the Makefile

ROOT = Path(__file__).resolve().parent.parent

IN_CI = os.environ.get("CI", "").lower() == "true"


def need_data(*parts: str) -> Path:
    """The data path, or skip (fail under CI=true) with a reason naming what is missing."""
    p = data_root().joinpath(*parts)
    if not p.exists():
        msg = f"needs {p} (set FACECORE_DATA to the shared data folder; docs/data.md)"
        if IN_CI:
            pytest.fail("CI=true but " + msg)
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    return need_data("lfw", "lfw-deepfunneled")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return need_data()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module, as realtime.py runs: small networks on a busy 2-core CPU
    crawl with more."""
    from facecore.core.runtime import set_threads

    threads = set_threads(1)
    yield
    set_threads(threads)


def pytest_configure(config):
    config.addinivalue_line("markers", "teacher_files(ready, names): needs staged teacher files (docs/teachers.md)")


def pytest_collection_modifyitems(config, items):
    """Tests of staged teachers run only where their files are (never shipped, not in the data folder)."""
    left = [i for i in items if (m := i.get_closest_marker("teacher_files")) and not m.kwargs["ready"]]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [i for i in items if i not in left]
        config._facecore_teacher_note = (f"{len(left)} test(s) of staged teachers not run: their files are not "
                                         "staged ($FACECORE_TEACHERS or $FACECORE_WORK/teachers; docs/teachers.md)")


def pytest_terminal_summary(terminalreporter, config):
    note = getattr(config, "_facecore_teacher_note", None)
    if note:
        terminalreporter.write_line(note)


def pytest_sessionfinish(session, exitstatus):
    # Under CI=true a skipped test is a failure: CI must exercise everything.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        reporter.write_line(f"CI=true: {len(reporter.stats['skipped'])} test(s) skipped; failing the run")
        session.exitstatus = 1
