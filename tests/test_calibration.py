"""facecore.evaluation.calibration and metrics.realised_fpr: thresholds of one set, FPR realised on others,
against brute-force loops over pairs."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from facecore.evaluation import calibration, metrics
from facecore.evaluation.calibration import PairSims, calibration_table, labelled_sims, pooled
from facecore.evaluation.embed import embed_files
from facecore.networks.models import Embedder, checkpoint_meta


def _loop_share_above(values, threshold) -> float:
    return sum(1 for v in values if v > threshold) / len(values)


@pytest.mark.parametrize("quantized", [False, True])
def test_realised_fpr_is_the_share_strictly_above(quantized):
    rng = np.random.default_rng(0)
    neg = rng.normal(size=500)
    neg = np.round(neg, 1) if quantized else neg  # ties at the threshold must not count
    for t in [-5.0, -0.3, 0.0, 0.1, float(neg[7]), float(neg.max()), 5.0]:
        assert metrics.realised_fpr(neg, t) == _loop_share_above(neg, t)
        assert metrics.accept_rate(neg, t) == _loop_share_above(neg, t)


@pytest.mark.parametrize("quantized", [False, True])
def test_threshold_at_fpr_realises_at_most_fpr_on_its_own_negatives(quantized):
    rng = np.random.default_rng(1)
    neg = rng.normal(size=3000)
    neg = np.round(neg, 2) if quantized else neg
    for f in [0.0, 1e-3, 1e-2, 0.1, 0.5]:
        t = metrics.threshold_at_fpr(neg, f)
        assert metrics.realised_fpr(neg, t) <= f
        if not quantized:  # distinct values: exactly int(f * n) negatives lie above
            assert metrics.realised_fpr(neg, t) == int(f * len(neg)) / len(neg)


def test_realised_fpr_without_negatives_is_an_error():
    with pytest.raises(ValueError, match="no negative pairs"):
        metrics.realised_fpr(np.zeros(0), 0.5)


def test_different_identity_pairs_of_a_labelled_set_match_a_loop():
    rng = np.random.default_rng(2)
    emb, labels = rng.normal(size=(30, 5)), rng.integers(0, 6, size=30)
    pos, neg, _ = metrics.query_pair_similarities(emb, labels)
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    want_pos, want_neg = [], []
    for i, j in itertools.combinations(range(len(emb)), 2):
        (want_pos if labels[i] == labels[j] else want_neg).append(float(metrics.snap(u[i] @ u[j])))
    assert np.array_equal(np.sort(neg), np.sort(np.float32(want_neg)))
    assert np.array_equal(np.sort(pos), np.sort(np.float32(want_pos)))


def test_calibration_table_matches_brute_force():
    rng = np.random.default_rng(3)
    sims = {"lfw": PairSims(rng.normal(0.6, 0.1, 300), rng.normal(0.0, 0.1, 2000), 10),
            "cfp-fp": PairSims(rng.normal(0.5, 0.1, 300), rng.normal(0.1, 0.1, 3000), 10)}
    table = calibration_table(sims, [1e-3, 1e-2], extra={"stored": {"0.001": 0.3, "0.01": 0.2}})
    assert len(table) == 2 * 5
    for f in [1e-3, 1e-2]:
        part = table[table["fpr"] == f].set_index("calibrated on")
        all_neg = sorted(np.concatenate([s.neg for s in sims.values()]), reverse=True)
        thr = {"LFW": sorted(sims["lfw"].neg, reverse=True)[int(f * 2000)],
               "CFP-FP": sorted(sims["cfp-fp"].neg, reverse=True)[int(f * 3000)],
               "union": all_neg[int(f * 5000)], "stored": {1e-3: 0.3, 1e-2: 0.2}[f]}
        thr["strictest"] = max(thr["LFW"], thr["CFP-FP"])
        for name, t in thr.items():
            assert part.loc[name, "threshold"] == t
            for key, label in (("lfw", "LFW"), ("cfp-fp", "CFP-FP")):
                assert part.loc[name, f"FPR {label}"] == _loop_share_above(sims[key].neg, t)
                assert part.loc[name, f"TPR {label}"] == _loop_share_above(sims[key].pos, t)
        assert part.loc["LFW", "FPR LFW"] <= f and part.loc["CFP-FP", "FPR CFP-FP"] <= f
    assert len(pooled(sims).neg) == 5000


def _tiny_embedder() -> Embedder:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 8))
    return Embedder(model.eval(), checkpoint_meta("tiny", 8, 32))


def test_labelled_sims_pairs_every_image_by_its_folder(tmp_path):
    rng = np.random.default_rng(4)
    root = tmp_path / "aligned"
    names = [f"{ident}/{k}.jpg" for ident in ("a", "b", "c") for k in range(1 + len(ident) + ord(ident) % 3)]
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(root / n)
    (root / "manifest.csv").write_text("path\n")
    emb = _tiny_embedder()
    got = labelled_sims(emb, root)
    e = embed_files([root / n for n in names], emb, aligned=True, flip=True, progress=False).embeddings
    u = e / np.linalg.norm(e.astype(np.float64), axis=1, keepdims=True)
    pos, neg = [], []
    for i, j in itertools.combinations(range(len(names)), 2):
        same = names[i].split("/")[0] == names[j].split("/")[0]
        (pos if same else neg).append(float(metrics.snap(u[i] @ u[j])))
    assert got.images == len(names)
    assert np.allclose(np.sort(got.pos), np.sort(pos), atol=1e-6)
    assert np.allclose(np.sort(got.neg), np.sort(neg), atol=1e-6)


def test_labelled_sims_without_an_aligned_folder_names_the_staging_tool(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage_celeba_heldout"):
        labelled_sims(_tiny_embedder(), tmp_path / "missing")


def test_calibrate_thresholds_keeps_the_fpr_on_every_set(monkeypatch):
    rng = np.random.default_rng(5)
    sims = {"lfw": PairSims(rng.normal(0.6, 0.1, 50), rng.normal(0.0, 0.1, 2000), 10),
            "celeba-heldout": PairSims(rng.normal(0.6, 0.1, 50), rng.normal(-0.1, 0.1, 9000), 10),
            "cfp-ff": PairSims(rng.normal(0.6, 0.1, 50), rng.normal(0.1, 0.1, 3000), 10)}
    monkeypatch.setattr(calibration, "calibration_sets", lambda embedder, sets, **where: {s: sims[s] for s in sets})
    got = calibration.calibrate_thresholds(None, [1e-3, 1e-2], sets=list(sims))
    table = calibration_table(sims, [1e-3, 1e-2]).set_index(["fpr", "calibrated on"])
    for f in [1e-3, 1e-2]:
        assert got[str(f)] == table.loc[(f, "strictest"), "threshold"]
        assert all(metrics.realised_fpr(p.neg, got[str(f)]) <= f for p in sims.values())
        assert got[str(f)] > table.loc[(f, "union"), "threshold"]  # pooling lets the big lenient set decide
    assert calibration.calibrate_thresholds(None, [1e-2], sets=["lfw"]) == {"0.01": table.loc[(1e-2, "LFW"), "threshold"]}
