"""facecore.core.runtime.progress_bar: a widget only when an interactive frontend runs the kernel."""
from __future__ import annotations

import types

import pytest

from facecore.core import runtime


def _kernel(monkeypatch, metadata):
    shell = types.SimpleNamespace(kernel=types.SimpleNamespace(get_parent=lambda: {"metadata": metadata}))
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)


@pytest.mark.parametrize("metadata, widget", [({}, False), ({"cellId": "c1"}, True)])
def test_widgets_only_for_an_interactive_frontend(monkeypatch, metadata, widget):
    monkeypatch.delenv("FACECORE_PROGRESS", raising=False)
    _kernel(monkeypatch, metadata)  # papermill/nbclient send no cell id; JupyterLab and VS Code do
    assert runtime.widget_frontend() is widget


def test_outside_a_kernel_and_the_override(monkeypatch):
    from tqdm.std import tqdm

    monkeypatch.delenv("FACECORE_PROGRESS", raising=False)
    assert runtime.widget_frontend() is False  # plain python: no IPython kernel
    bar = runtime.progress_bar(range(3), disable=True)
    assert type(bar) is tqdm and list(bar) == [0, 1, 2]
    _kernel(monkeypatch, {"cellId": "c1"})
    monkeypatch.setenv("FACECORE_PROGRESS", "text")
    assert runtime.widget_frontend() is False
    monkeypatch.setenv("FACECORE_PROGRESS", "widget")
    assert runtime.widget_frontend() is True
