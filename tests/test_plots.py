"""facecore.evaluation.plots: the identification-rate figures (a grid on one x-axis; legends off the curves)."""
from __future__ import annotations

import numpy as np
import pytest

from facecore.evaluation.idrate import id_rate_streaming
from facecore.evaluation.plots import roc_curves, similarity_distributions


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    out = {}
    for i, spread in enumerate([0.5, 1.5, 3.0, 0.0, 2.0]):
        labels = np.repeat(np.arange(12), 3)
        q = rng.normal(size=(12, 16))[labels] * spread + rng.normal(size=(36, 16)) + (i == 3) * 4.0
        d = rng.normal(size=(20, 16))
        q, d = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (q, d))
        out[f"model-{i}"] = id_rate_streaming(q.astype(np.float32), labels, d.astype(np.float32), [0.5, 0.1],
                                              progress=False)
    return out


@pytest.mark.parametrize("kind", ["positives", "sources"])
def test_distributions_are_a_grid_on_one_x_axis(results, kind):
    import matplotlib

    matplotlib.use("Agg")
    fig = similarity_distributions(results, kind, cols=3)
    used = [ax for ax in fig.axes if ax.axison]
    assert len(used) == len(results) and len(fig.axes) == 6  # 2 rows of 3, one panel left empty
    assert len({ax.get_xlim() for ax in used}) == 1  # one shared range, wide enough for every model
    lo, hi = used[0].get_xlim()
    for ax in used:
        for line in ax.get_lines():
            x, y = line.get_data()
            assert lo <= x[y > 0].min() and x[y > 0].max() <= hi
    assert not any(ax.get_legend() for ax in used) and len(fig.legends) == 1  # one legend, below the grid
    assert fig.get_size_inches()[0] < 2 * fig.get_size_inches()[1] * 2  # not a strip


def test_roc_legend_is_outside_the_axes(results):
    import matplotlib

    matplotlib.use("Agg")
    fig = roc_curves(results)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, off the curves
