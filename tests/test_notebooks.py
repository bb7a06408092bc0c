"""The training and alignment notebooks, headless through papermill on the smoke profile."""
import json
import shutil

import pytest

from facecore import pipeline
from facecore.core.checkpoint import read_checkpoint
from facecore.core.paths import PROJECT_ROOT

RUNS = PROJECT_ROOT / "runs" / "smoke"


def _stage(name):
    return pipeline.main(["--profile", "smoke", "--stages", name])


@pytest.fixture(scope="module")
def aligned(data_dir):
    shutil.rmtree(RUNS, ignore_errors=True)
    assert _stage("align-celeba") == 0
    return RUNS / "aligned-celeba"


def test_alignment_notebook(aligned):
    m = json.loads((aligned / "metrics.json").read_text())
    assert m["images"] == 400 and m["face_found_rate"] > 0.98
    assert m["eye_error_median_px"] < 3.0
    assert (aligned / "manifest.csv").exists()


@pytest.mark.parametrize("name", ["arcface", "ce", "triplet"])
def test_training_notebook_loss_falls(aligned, name):
    assert _stage(name) == 0
    m = json.loads((RUNS / "metrics" / f"{name}.json").read_text())
    assert m["epochs"] == 3
    assert m["last_train_loss"] < m["first_train_loss"], m
    assert (RUNS / "models" / ("triplet-best.pt" if name == "triplet" else f"{name}.pt")).exists()


def test_distill_notebook_learns_the_teacher(aligned):
    """The dlib teacher through the notebook: the student's loss falls and its export is written."""
    pytest.importorskip("dlib")
    assert _stage("distill") == 0
    m = json.loads((RUNS / "metrics" / "distill.json").read_text())
    assert m["epochs"] == 3 and m["loss"] == "distill"
    cfg = read_checkpoint(RUNS / "train" / "distill" / "last.pt", verify=False)["meta"]["config"]
    assert cfg["augment"] == "photometric"  # the smoke profile's AUGMENT reached the trainer
    assert m["last_train_loss"] < m["first_train_loss"], m
    assert m["head"]["kind"] == "linear" and m["head"]["out_dim"] == 128  # the shipped student speaks dlib's space
    shipped = read_checkpoint(RUNS / "models" / "distill.pt")["meta"]
    assert shipped["embedding_dim"] == 128 and shipped["head"]["in_dim"] == cfg["embedding_dim"]
    assert len(list((PROJECT_ROOT / "cache" / "crops" / "teacher").rglob("*.npz"))) >= 40


def test_unknown_profile_and_stage_are_named(capsys):
    assert pipeline.main(["--profile", "nope"]) == 2  # exit 2, one line (it was a SystemExit with code 1)
    assert "valid profiles" in capsys.readouterr().err
    assert pipeline.main(["--profile", "smoke", "--stages", "nope"]) == 2
    assert "align-celeba" in capsys.readouterr().err


def test_missing_data_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FACECORE_DATA", str(tmp_path))
    assert pipeline.main(["--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "celeba-crops" in err and "FACECORE_DATA" in err
