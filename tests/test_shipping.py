import json

import numpy as np
import pytest

import facecore.training.shipping as shipping
from facecore.training.shipping import promote


@pytest.fixture
def zoo(monkeypatch, tmp_path):
    """A shipped model 'm' (a file whose text is its per-fold accuracy) and fake evaluation/hashing
    (patched where shipping looks them up)."""
    shipped = tmp_path / "m.pt"
    shipped.write_text("0.90")
    recorded = {}
    monkeypatch.setattr(shipping, "shipped_models", lambda: {"m": (shipped, None)})
    monkeypatch.setattr(shipping, "record_hash", lambda p: recorded.setdefault("m", ("m", p.read_text())))
    monkeypatch.setattr(shipping, "load_embedder", lambda p, device="cpu": p)
    folds = lambda p: np.full(10, float(open(p).read())) + np.linspace(-0.01, 0.01, 10)  # noqa: E731
    monkeypatch.setattr(shipping, "evaluate", lambda name, e, aligned_dir=None, cache_dir=None: {
        "lfw_acc": folds(e).mean(), "lfw_std": folds(e).std(), "accuracies": folds(e)})
    return shipped, recorded


def test_promote_replaces_only_with_a_better_model(zoo, tmp_path):
    shipped, recorded = zoo
    worse, better = tmp_path / "worse.pt", tmp_path / "better.pt"
    worse.write_text("0.89")
    better.write_text("0.93")
    r = promote(worse, "m")
    assert not r["promoted"] and shipped.read_text() == "0.90" and not recorded
    (tmp_path / "cand.json").write_text('{"lfw_acc": 0.93}')
    r = promote(better, "m", metrics_from=tmp_path / "cand.json", metrics_to=tmp_path / "shipped.json")
    assert r["promoted"] and shipped.read_text() == "0.93" and recorded["m"][1] == "0.93"
    assert r["paired"]["mean"] == pytest.approx(0.03) and r["paired"]["folds_better"] == 10
    m = json.loads((tmp_path / "shipped.json").read_text())
    assert m["lfw_acc"] == 0.93 and m["sha256"] == "0.93" and m["promoted_from"] == str(better)
    with pytest.raises(ValueError, match="not a shipped model"):
        promote(better, "nope")


def test_promote_command_line_names_a_missing_candidate(zoo, tmp_path, capsys):
    from facecore.training.shipping import main

    assert main(["promote", str(tmp_path / "none.pt"), "m"]) == 2
    assert "candidate model" in capsys.readouterr().err
