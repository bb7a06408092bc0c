"""notebooks/id-rate.ipynb runs headless on a tiny setting and writes consistent results."""
from __future__ import annotations

import nbformat
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, need_data

NOTEBOOK = ROOT / "notebooks" / "id-rate.ipynb"
FPRS = [0.5, 0.1, 0.01]
TINY = {"MAX_QUERY_IDENTITIES": 4, "MAX_DISTRACTORS": 8, "QUERY_MIN_IMAGES": 3, "FPRS": FPRS, "MODELS": [],
        "INCLUDE_RANDOM_BASELINE": True, "DEVICE": "cpu", "SEED": 1}


def test_notebook_is_committed_stripped_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip()]
    names = [ln.split(":")[0] for ln in lines]
    assert all(n.isupper() for n in names) and all("#" in ln for ln in lines)
    assert set(TINY) | {"LFW_ALIGNED", "OUTPUT_DIR", "CACHE_DIR"} <= set(names)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_a_small_run_may_not_write_the_committed_results(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match="committed full-protocol results"):
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3",
                            parameters={**TINY, "OUTPUT_DIR": "id_rate"}, cwd=str(NOTEBOOK.parent), progress_bar=False)


def test_notebook_tiny_run(tmp_path):
    import papermill as pm

    from facecore.evaluation.identification import lfw_id_split

    lfw = need_data("lfw", "lfw-deepfunneled")
    out = tmp_path / "out"
    # raw LFW (faces detected on the fly): a missing aligned folder must fall back to it
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3",
                        parameters={**TINY, "OUTPUT_DIR": str(out), "CACHE_DIR": str(tmp_path / "cache"),
                                    "LFW_ALIGNED": str(tmp_path / "no-aligned-crops")},
                        cwd=str(NOTEBOOK.parent), progress_bar=False)
    import config

    table = pd.read_csv(out / "results.csv")
    assert sorted(table["model"]) == sorted([*config.params, "random-inceptionresnetv1"])  # MODELS=[]: all shipped
    row = table.set_index("model").loc["random-inceptionresnetv1"]
    tprs = [row[f"TPR@FPR={f:g}"] for f in FPRS]
    assert all(0 <= t <= 1 for t in tprs) and tprs == sorted(tprs, reverse=True)
    assert 0 <= row["ROC-AUC"] <= 1
    split = lfw_id_split(lfw, 3, 4, 8, seed=1)
    assert row["query_images"] + row["failed_query"] == len(split.query_paths)
    assert row["distractors"] + row["failed_distractors"] == len(split.distractor_paths)
    sizes = pd.Series(split.query_labels).value_counts()
    if row["failed_query"] == 0:
        assert row["n_positives"] == int((sizes * (sizes - 1) // 2).sum())
        q, d = len(split.query_paths), row["distractors"]
        assert row["n_negatives"] == (q * q - int((sizes ** 2).sum())) // 2 + q * d
    md = (out / "results.md").read_text()
    assert "random-inceptionresnetv1" in md and "TPR@FPR=0.01" in md
    assert "> **Not the full protocol**: subset" in md  # a small run says so, in the table and the CSV
    assert table["protocol"].str.contains("MAX_QUERY_IDENTITIES=4").all()
    executed = (tmp_path / "executed.ipynb").read_text()
    assert "Not the full protocol" in executed
    assert executed.count("application/vnd.jupyter.widget-view+json") == 1  # the threshold explorer; text bars
    for png in ("roc_curves.png", "comparison1.png", "comparison2.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.isfinite(table.select_dtypes("number").to_numpy(float)).all()
