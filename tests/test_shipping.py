import json

import numpy as np
import pytest
import torch

import facecore.training.shipping as shipping
from facecore.core.checkpoint import read_checkpoint, save_checkpoint
from facecore.networks.heads import PREFIX, create_head
from facecore.networks.models import checkpoint_meta, create_model
from facecore.recognition.recognizer import load_model
from facecore.training.shipping import CALIBRATION_FPRS, calibrate_on_sets, promote


@pytest.fixture
def zoo(monkeypatch, tmp_path):
    """A shipped model 'm' (a file whose text is its per-fold accuracy) and fake evaluation/hashing
    (patched where shipping looks them up)."""
    shipped = tmp_path / "m.pt"
    shipped.write_text("0.90")
    recorded = {}
    monkeypatch.setattr(shipping, "shipped_models", lambda: {"m": (shipped, None)})
    monkeypatch.setattr(shipping, "record_hash", lambda p: recorded.setdefault("m", ("m", p.read_text())))
    monkeypatch.setattr(shipping, "_embedder", lambda p, device="cpu", head=False: p)
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


def _student(path, headed: bool):
    """A tiny EfficientNet checkpoint, with a 5-d teacher-space head when ``headed``, LFW thresholds stored."""
    torch.manual_seed(0)
    save_checkpoint(path, create_model("efficientnet-b0", embedding_dim=16).eval(), checkpoint_meta("efficientnet-b0", 16, 32))
    blob = read_checkpoint(path)
    blob["meta"].update(threshold=0.9, threshold_fpr=0.01, thresholds_by_fpr={"0.01": 0.9})
    if headed:
        blob["meta"].update(embedding_dim=5, head={"kind": "linear", "in_dim": 16, "out_dim": 5, "hidden": 0},
                            backbone={"threshold": 0.3, "threshold_fpr": 0.01, "thresholds_by_fpr": {"0.01": 0.3}})
        blob["state_dict"].update({PREFIX + k: v for k, v in create_head("linear", 16, 5).state_dict().items()})
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("headed", [False, True])
def test_calibrate_on_sets_stores_the_strictest_table_for_the_embedding_realtime_uses(monkeypatch, tmp_path, headed):
    seen = {}

    def fake(embedder, fprs, sets, **where):
        seen.update(dim=int(embedder.meta["embedding_dim"]), sets=sets, where=where)
        return {str(f): 0.5 + f for f in fprs}

    monkeypatch.setattr(shipping, "calibrate_thresholds", fake)
    path = _student(tmp_path / "m.pt", headed)
    table = calibrate_on_sets(path, ("lfw", "cfp-fp"), cache_dir=tmp_path / "c")
    assert seen == {"dim": 16, "sets": ("lfw", "cfp-fp"), "where": {"cache_dir": tmp_path / "c"}}  # the backbone's
    _, thr, origin = load_model(checkpoint=path)  # realtime.py's default: FPR 0.01, the backbone
    assert thr == pytest.approx(0.51) and table["0.01"] == thr
    assert origin == "checkpoint, calibrated on the strictest of LFW and CFP-FP at FPR 0.01"
    meta = read_checkpoint(path)["meta"]
    where = meta["backbone"] if headed else meta
    assert where["thresholds_by_fpr"] == {str(f): 0.5 + f for f in CALIBRATION_FPRS} and where["threshold_fpr"] == 1e-3
    if headed:  # the head's own LFW thresholds are left as they were
        assert load_model(checkpoint=path, head=True)[1:] == (0.9, "checkpoint, calibrated on LFW at FPR 0.01")


def test_promote_recalibrates_what_it_ships(zoo, monkeypatch, tmp_path):
    shipped, _ = zoo
    better = tmp_path / "better.pt"
    better.write_text("0.93")
    calls = []
    monkeypatch.setattr(shipping, "calibrate_on_sets", lambda p, sets, device, head, **w: calls.append(
        (p.read_text(), sets, head, w)) or {"0.01": 0.4})
    monkeypatch.setattr(shipping, "CALIBRATION_FPRS", (0.01,))
    (tmp_path / "cand.json").write_text('{"lfw_acc": 0.93, "thresholds_by_fpr": {"0.01": 0.3}, "threshold": 0.3}')
    r = promote(better, "m", calibrate=("lfw", "cfp-ff"), cache_dir=tmp_path / "c", data_root=tmp_path,
                metrics_from=tmp_path / "cand.json", metrics_to=tmp_path / "shipped.json")
    assert r["promoted"] and r["thresholds_by_fpr"] == {"0.01": 0.4} and shipped.read_text() == "0.93"
    m = json.loads((tmp_path / "shipped.json").read_text())
    assert (m["thresholds_by_fpr"], m["threshold"], m["calibrated_on"]) == ({"0.01": 0.4}, 0.4, ["LFW", "CFP-FF"])
    assert calls == [("0.93", ("lfw", "cfp-ff"), False, {"cache_dir": tmp_path / "c", "data_root": tmp_path})]


def test_promote_command_line_refuses_an_unknown_calibration_set(zoo, tmp_path, capsys):
    from facecore.training.shipping import main

    (tmp_path / "c.pt").write_text("0.95")
    assert main(["promote", str(tmp_path / "c.pt"), "m", "--calibrate", "lfw,imdb"]) == 2
    assert "--calibrate 'imdb': must be one of lfw, celeba-heldout, cfp-ff, cfp-fp" in capsys.readouterr().err


def test_recalibrate_rewrites_the_shipped_file_its_hash_and_its_metrics(monkeypatch, tmp_path, capsys):
    path = _student(tmp_path / "m.pt", headed=True)
    monkeypatch.setattr(shipping, "shipped_models", lambda: {"m": (path, None)})
    monkeypatch.setattr(shipping, "record_hash", lambda p: ("m", f"sha of {p.name}, {p.stat().st_size} B"))
    monkeypatch.setattr(shipping, "calibrate_thresholds", lambda e, fprs, sets, **w: {str(f): 0.5 + f for f in fprs})
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"lfw_acc": 0.9, "threshold": 0.9, "backbone": {"threshold": 0.3, "lfw_acc": 0.8}}))
    table = shipping.recalibrate("m", ("lfw", "cfp-ff"), metrics=metrics, cache_dir=tmp_path / "c")
    assert load_model(checkpoint=path)[1:] == (pytest.approx(0.51),
                                               "checkpoint, calibrated on the strictest of LFW and CFP-FF at FPR 0.01")
    m = json.loads(metrics.read_text())
    assert m["threshold"] == 0.9 and m["sha256"] == f"sha of m.pt, {path.stat().st_size} B"  # the head's kept
    assert m["backbone"] == {"threshold": 0.501, "lfw_acc": 0.8, "threshold_fpr": 0.001, "thresholds_by_fpr": table,
                             "calibrated_on": ["LFW", "CFP-FF"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "metrics.json"]  # no temporary left
    assert shipping.main(["calibrate", "nope"]) == 2
    assert "'nope' is not a shipped model" in capsys.readouterr().err
