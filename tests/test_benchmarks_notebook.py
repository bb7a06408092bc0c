"""notebooks/benchmarks.ipynb: committed stripped with a parameters cell; a tiny headless run writes
one table whose figures are the protocols' own."""
from __future__ import annotations

import nbformat
import pandas as pd
import pytest

from conftest import ROOT, need_data

NOTEBOOK = ROOT / "notebooks" / "benchmarks.ipynb"


def test_notebook_is_committed_stripped_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip()]
    assert all(ln.split(":")[0].isupper() and "#" in ln for ln in lines)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert not any("def " in c.source or "class " in c.source or "sys.path" in c.source for c in nb.cells
                   if c.cell_type == "code")


def test_tiny_run_writes_the_table_of_the_protocols(tmp_path):
    import papermill as pm

    import config

    from facecore.evaluation.identification import random_baseline
    from facecore.evaluation.protocols import evaluate

    need_data("lfw", "lfw-deepfunneled")
    tiny = {"MAX_QUERY_IDENTITIES": 3, "MAX_DISTRACTORS": 5, "FPRS": [0.1, 0.01], "SEED": 2}
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3", cwd=str(ROOT),
                        parameters={**tiny, "MODELS": ["ce-efficientnet"], "PROTOCOLS": ["id-rate"], "TEACHERS": ["dlib"],
                                    "CANDIDATES": {"candidate": str(config.checkpoint_path("ce-efficientnet"))},
                                    "OUTPUT_DIR": str(tmp_path / "out"), "CACHE_DIR": str(tmp_path / "cache"),
                                    "LFW_ALIGNED": str(tmp_path / "no-aligned-crops"), "DEVICE": "cpu"},
                        progress_bar=False)
    table = pd.read_csv(tmp_path / "out" / "benchmark.csv")
    # no published row: its one figure (CFP-FP) is not a column of an id-rate table
    assert list(table.model) == ["ce-efficientnet", "candidate", "random-inceptionresnetv1", "teacher: dlib"]
    rows = table.set_index("model")
    assert rows.loc["candidate"].drop("model", errors="ignore").equals(rows.loc["ce-efficientnet"])  # the same file
    assert 0.5 < table.set_index("model").loc["teacher: dlib", "ROC-AUC"] <= 1.0
    ref = evaluate("id-rate", random_baseline(2), aligned_dir=tmp_path / "no-aligned-crops", fprs=[0.1, 0.01],
                   max_query_identities=3, max_distractors=5, seed=2, cache_dir=tmp_path / "cache")
    row = table.set_index("model").loc["random-inceptionresnetv1"]
    assert row["ROC-AUC"] == pytest.approx(ref["auc"]) and row["TPR@FPR=0.1"] == pytest.approx(ref["tprs"][0])
    assert "CFP-FP" not in table.columns  # tests/test_protocols.py: the published row beside a measured CFP-FP
    assert "| ce-efficientnet |" in (tmp_path / "out" / "benchmark.md").read_text()
