"""notebooks/my-face-alignment.ipynb runs headless on a smoke setting and writes sane metrics."""
from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat

from conftest import ROOT, need_data

NOTEBOOK = ROOT / "notebooks" / "my-face-alignment.ipynb"
SMOKE = {"EPOCHS": 4, "INPUT_SIZE": 64, "BATCH_SIZE": 32, "MAX_TRAIN_IMAGES": 128, "MAX_TEST_IMAGES": 12,
         "N_SHOW": 6, "RESUME": False, "DEVICE": "cpu"}


def test_notebook_is_committed_stripped_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = [ln.split(":")[0] for ln in tagged[0].source.splitlines() if ln and not ln.startswith("#")]
    assert names and all(n.isupper() for n in names) and all("#" in ln for ln in tagged[0].source.splitlines())
    assert set(SMOKE) | {"OUTPUT", "STATE_DIR"} <= set(names)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_notebook_smoke_run(tmp_path):
    import papermill as pm

    need_data("landmarks-300w", "helen_test")
    need_data("landmarks-300w", "helen_train")
    out = tmp_path / "model" / "landmarker.pt"
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3",
                        parameters={**SMOKE, "OUTPUT": str(out), "STATE_DIR": str(tmp_path / "state")},
                        cwd=str(NOTEBOOK.parent), progress_bar=False)
    metrics = json.loads((out.parent / "metrics.json").read_text())
    assert out.exists() and out.stat().st_size < 5 * 2**20
    assert set(metrics["nme_eyes"]) == {"mean", "mtcnn", "ours"}
    assert all(math.isfinite(v) and v > 0 for v in metrics["nme_eyes"].values())
    assert metrics["n_test_faces"] == SMOKE["MAX_TEST_IMAGES"]
    assert metrics["n_used"] + metrics["mtcnn_misses"] == metrics["n_test_faces"] and metrics["n_used"] > 0
    assert metrics["train"]["last_epoch_loss"] < metrics["train"]["first_batch_loss"], metrics["train"]
    assert metrics["train"]["epochs"] == SMOKE["EPOCHS"]
    assert not list(Path(NOTEBOOK.parent).glob("*.train_state*"))
