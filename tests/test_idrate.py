"""facecore.evaluation.idrate (streaming) against the brute-force facecore.evaluation.metrics.id_rate: exact equality."""
from __future__ import annotations

import numpy as np
import pytest

from facecore.evaluation import idrate, metrics

FPRS = [0.5, 0.25, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0, 1.0]
SMALL = dict(query_block=256, distractor_block=512, pilot_pairs=20_000, progress=False)


def _data(seed: int, n_q: int = 1500, n_d: int = 3000, dim: int = 32, quantized: bool = False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 300, n_q)  # identities of 1..~12 images, some singletons
    centers = rng.normal(size=(300, dim))
    q = centers[labels] + rng.normal(scale=1.2, size=(n_q, dim))
    d = rng.normal(size=(n_d, dim))
    if quantized:  # components in {-1, 0, 1}: few distinct similarities, ties everywhere
        q, d = np.sign(q.round(0)), np.sign(d.round(0))
        q[np.abs(q).sum(1) == 0, 0] = 1
        d[np.abs(d).sum(1) == 0, 0] = 1
    return q.astype(np.float32), labels, d.astype(np.float32)


def _check_equal(q, labels, d, **kw):
    ref = metrics.id_rate(q, labels, d, FPRS)
    got = idrate.id_rate_streaming(q, labels, d, FPRS, **{**SMALL, **kw})
    assert np.array_equal(got["thresholds"], ref["thresholds"]), got["thresholds"] - ref["thresholds"]
    assert np.array_equal(got["tprs"], ref["tprs"])
    assert (got["n_positives"], got["n_negatives"]) == (ref["n_positives"], ref["n_negatives"])
    return ref, got


@pytest.mark.parametrize("quantized", [False, True])
def test_streaming_equals_brute_force(quantized):
    q, labels, d = _data(0, quantized=quantized)
    ref, got = _check_equal(q, labels, d)
    if quantized:
        pos, nq, nd = metrics.query_pair_similarities(q, labels, d)
        assert len(np.unique(np.r_[nq, nd])) < len(nq) / 100  # ties everywhere
    assert got["hist_pos"].sum() == ref["n_positives"]
    assert got["hist_query_neg"].sum() + got["hist_distractor_neg"].sum() == ref["n_negatives"]


def test_second_pass_when_the_pilot_misses():
    q, labels, d = _data(1)
    _, got = _check_equal(q, labels, d, window_sigmas=0.0, pilot_pairs=500)
    assert got["passes"] == 2


def test_torch_backend_and_unsorted_memmap_distractors(tmp_path):
    q, labels, d = _data(2, n_q=700, n_d=1100)
    np.save(tmp_path / "d.npy", d)
    dm = np.load(tmp_path / "d.npy", mmap_mode="r")
    _check_equal(q, labels, dm, backend="torch")
    _check_equal(q, labels, dm, backend="numpy", query_block=4096, distractor_block=100_000)


def test_no_distractors():
    q, labels, _ = _data(3, n_q=400)
    _check_equal(q, labels, None)


def test_float32_mode_is_close():
    q, labels, d = _data(4)
    ref = metrics.id_rate(q, labels, d, FPRS)
    got = idrate.id_rate_streaming(q, labels, d, FPRS, exact=False, **SMALL)
    assert np.abs(got["thresholds"] - ref["thresholds"]).max() < 1e-6
    assert np.abs(got["tprs"] - ref["tprs"]).max() < 0.01


def test_roc_points_are_exact_and_auc_within_its_bound():
    q, labels, d = _data(5, n_q=800, n_d=1500)
    pos, nq, nd = metrics.query_pair_similarities(q, labels, d)
    neg = np.r_[nq, nd]
    got = idrate.id_rate_streaming(q, labels, d, [0.1], **SMALL)
    exact_auc = metrics.roc_auc(pos, neg)
    assert abs(got["auc"] - exact_auc) <= got["auc_max_error"] + 1e-12
    assert got["auc_max_error"] < 1e-3
    fpr, tpr, thr = got["roc_fpr"], got["roc_tpr"], got["roc_thresholds"]
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and np.all(np.diff(fpr) >= 0)
    for i in np.linspace(1, len(thr) - 1, 25).astype(int):
        assert fpr[i] == np.mean(neg >= thr[i]) and tpr[i] == np.mean(pos >= thr[i])


def test_bad_input_is_named():
    q, labels, d = _data(6, n_q=50, n_d=20)
    d[7] = 0
    with pytest.raises(ValueError, match="distractor_emb row 7"):
        idrate.id_rate_streaming(q, labels, d, [0.1], **SMALL)
    with pytest.raises(ValueError, match="dimension"):
        idrate.id_rate_streaming(q, labels, d[:, :5], [0.1], **SMALL)
    with pytest.raises(ValueError, match="positive"):
        idrate.id_rate_streaming(q, np.arange(len(q)), None, [0.1], **SMALL)
    with pytest.raises(ValueError, match="backend"):
        idrate.id_rate_streaming(q, labels, None, [0.1], backend="cuda", **SMALL)


def test_concentrated_similarities_get_fine_bins():
    """A random network maps every face near one direction: similarities within ~1e-4 of 1."""
    rng = np.random.default_rng(7)
    common = rng.normal(size=64)
    q = common + rng.normal(scale=2e-3, size=(300, 64))
    d = common + rng.normal(scale=2e-3, size=(400, 64))
    labels = rng.integers(0, 60, 300)
    q[labels == 0] += 1e-3  # identity 0 a little apart, so the AUC is not 1/2
    ref, got = _check_equal(q, labels, d)
    assert ref["thresholds"].min() > 0.999
    pos, nq, nd = metrics.query_pair_similarities(q, labels, d)
    assert got["auc_max_error"] == 0.0
    assert got["auc"] == pytest.approx(metrics.roc_auc(pos, np.r_[nq, nd]), abs=1e-12)
