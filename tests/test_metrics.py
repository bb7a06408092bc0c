"""facecore.evaluation.metrics against the published test vectors and brute-force references."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from facecore.evaluation import metrics

# Test vectors of the Deep Learning School face-recognition assignment ("Identification Rate Metric"),
# as published in the notebook notebooks/4_Identification_Rate_Metric_Clean.ipynb of the public GitHub
# repository MataNerdy/FaceRecognition. Query images by identity, their (unnormalised) embeddings, and
# five distractors.
QUERY_DICT = {2876: ["1.jpg", "2.jpg", "3.jpg"], 5674: ["5.jpg"], 864: ["9.jpg", "10.jpg"]}
QUERY_NAMES = ["1.jpg", "2.jpg", "3.jpg", "5.jpg", "9.jpg", "10.jpg"]
QUERY_EMB = [[1.56, 6.45, -7.68], [-1.1, 6.11, -3.0], [-0.06, -0.98, -1.29],
             [8.56, 1.45, 1.11], [0.7, 1.1, -7.56], [0.05, 0.9, -2.56]]
DISTRACTOR_EMB = [[0.12, -3.23, -5.55], [-1, -0.01, 1.22], [0.06, -0.23, 1.34],
                  [-6.6, 1.45, -1.45], [0.89, 1.98, 1.45]]
TRUE_POS = [0.8678237233650096, 0.21226104378511604, -0.18355866977496182, 0.9787437979250561]
TRUE_NEG = [0.15963231223161822, 0.8507997093616965, 0.9272761484302097, -0.0643994061127092,
            0.5412660901220571, 0.701307100338029, -0.2372575528216902, 0.6941032794522218,
            0.549425446066643, -0.011982733001947084, -0.0466679194884999]
TRUE_THR = [-0.011982733001947084, 0.3371426578637511, 0.701307100338029]
TRUE_TPR = [0.75, 0.5, 0.5]
FPRS = [0.5, 0.3, 0.1]


def _labels():
    by_name = {n: k for k, names in QUERY_DICT.items() for n in names}
    return [by_name[n] for n in QUERY_NAMES]


def test_published_test_vectors():
    pos, neg_q, neg_d = metrics.query_pair_similarities(np.array(QUERY_EMB), _labels(), np.array(DISTRACTOR_EMB))
    assert np.allclose(sorted(pos), sorted(TRUE_POS), atol=1e-6)
    assert np.allclose(sorted(neg_q), sorted(TRUE_NEG), atol=1e-6)
    assert len(neg_d) == 30
    r = metrics.id_rate(np.array(QUERY_EMB), _labels(), np.array(DISTRACTOR_EMB), FPRS)
    assert np.allclose(r["thresholds"], TRUE_THR, atol=1e-6)
    assert np.array_equal(r["tprs"], TRUE_TPR)
    assert r["n_positives"] == 4 and r["n_negatives"] == 41


def _brute_id_rate(q, labels, d, fprs):
    """Loops over pairs, one at a time: the definition written out."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    pos, neg = [], []
    for i, j in itertools.combinations(range(len(q)), 2):
        (pos if labels[i] == labels[j] else neg).append(float(metrics.snap(qn[i] @ qn[j])))
    neg += [float(metrics.snap(a @ b)) for a in qn for b in dn]
    neg = sorted(neg, reverse=True)
    thr = [neg[int(f * len(neg))] for f in fprs]
    return thr, [sum(p > t for p in pos) / len(pos) for t in thr]


@pytest.mark.parametrize("quantized", [False, True])
def test_id_rate_matches_pair_loop(quantized):
    rng = np.random.default_rng(1)
    q, d = rng.normal(size=(40, 8)), rng.normal(size=(25, 8))
    if quantized:  # many exact ties
        q, d = np.sign(q), np.sign(d)
    labels = rng.integers(0, 8, size=40)
    fprs = [0.5, 0.2, 0.1, 0.01, 0.0]
    r = metrics.id_rate(q, labels, d, fprs)
    thr, tpr = _brute_id_rate(q, labels, d, fprs)
    assert np.array_equal(r["thresholds"], thr)
    assert np.array_equal(r["tprs"], tpr)


def test_id_rate_errors():
    with pytest.raises(ValueError, match="row 1"):
        metrics.id_rate(np.array([[1.0, 0], [0, 0]]), [0, 0], None, [0.1])
    with pytest.raises(ValueError, match="positive"):
        metrics.id_rate(np.eye(3), [0, 1, 2], None, [0.1])
    with pytest.raises(ValueError, match="FPR"):
        metrics.threshold_at_fpr(np.arange(5.0), 1.5)


def test_threshold_at_fpr_bounds_the_false_positive_share():
    neg = np.random.default_rng(2).normal(size=1000).round(1)  # with ties
    for fpr in [0.001, 0.01, 0.1, 0.5]:
        t = metrics.threshold_at_fpr(neg, fpr)
        assert np.mean(neg > t) <= fpr
        assert t == sorted(neg, reverse=True)[int(fpr * 1000)]


def _brute_auc(pos, neg):
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_auc_is_mann_whitney(seed):
    rng = np.random.default_rng(seed)
    pos, neg = rng.integers(0, 10, 60).astype(float), rng.integers(-3, 7, 80).astype(float)
    assert metrics.roc_auc(pos, neg) == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    fpr, tpr, thr = metrics.roc_curve(pos, neg)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:]):
        assert f == np.mean(neg >= th) and t == np.mean(pos >= th)
    # trapezoidal area under the curve equals the Mann-Whitney AUC
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(pos, neg), abs=1e-12)


def _brute_lfw(s, y, folds):
    accs, thrs = [], []
    for f in np.unique(folds):
        tr = folds != f
        u = np.unique(s[tr])
        cands = [-np.inf] + list((u[:-1] + u[1:]) / 2) + [np.inf]
        scores = [np.mean((s[tr] > c) == y[tr]) for c in cands]
        c = cands[int(np.argmax(scores))]
        thrs.append(c)
        accs.append(np.mean((s[~tr] > c) == y[~tr]))
    return accs, thrs


@pytest.mark.parametrize("seed", [0, 3])
def test_lfw_accuracy_matches_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    y = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    s = np.where(y, rng.normal(0.5, 0.3, len(y)), rng.normal(0.0, 0.3, len(y))).round(2)  # ties too
    r = metrics.lfw_accuracy(s, y)
    accs, thrs = _brute_lfw(s, y, np.repeat(np.arange(10), 60))
    assert r["accuracies"] == pytest.approx(accs, abs=0)
    assert r["thresholds"] == pytest.approx(thrs, abs=0)
    assert r["mean"] == pytest.approx(np.mean(accs)) and r["std"] == pytest.approx(np.std(accs))
    assert 0.7 < r["mean"] < 0.95


def test_lfw_accuracy_perfect_separation_and_errors():
    y = np.tile([True, False], 50)
    r = metrics.lfw_accuracy(np.where(y, 0.9, 0.1), y)
    assert r["mean"] == 1.0 and all(0.1 < t < 0.9 for t in r["thresholds"])
    with pytest.raises(ValueError, match="NaN"):
        metrics.lfw_accuracy(np.r_[np.nan, np.ones(99)], y)


def test_paired_difference_matches_brute_force():
    from facecore.evaluation.metrics import paired_difference

    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.8, 1, 10), rng.uniform(0.8, 1, 10)
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / 10
    se = (sum((x - mean) ** 2 for x in d) / 9) ** 0.5 / 10 ** 0.5
    r = paired_difference(a, b)
    assert r["mean"] == pytest.approx(mean) and r["se"] == pytest.approx(se)
    assert r["folds_better"] == sum(x > 0 for x in d) and r["folds"] == 10
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference(a, b[:5])


def test_positive_pairs_are_the_brute_force_positives_in_order():
    rng = np.random.default_rng(3)
    labels = rng.choice(["a", "b", "c", "d"], 40)  # interleaved labels, one label possibly absent
    emb = rng.normal(size=(40, 5))
    i, j = metrics.positive_pairs(labels)
    brute = [(p, q) for p in range(40) for q in range(p + 1, 40) if labels[p] == labels[q]]
    assert list(zip(i.tolist(), j.tolist())) == brute
    pos, _, _ = metrics.query_pair_similarities(emb, labels)
    np.testing.assert_array_equal(metrics.cosine_matrix(emb, emb)[i, j], pos)
    assert len(metrics.positive_pairs(["x", "y"])[0]) == 0 and len(metrics.positive_pairs([])[0]) == 0


def _exact_bootstrap(d: np.ndarray, groups: list[list[int]]) -> tuple[float, float]:
    """(mean, std) of the group-bootstrap delta over every ordered resample of the groups (all equally likely)."""
    vals = [sum(d[k] for g in pick for k in groups[g]) / sum(len(groups[g]) for g in pick)
            for pick in itertools.product(range(len(groups)), repeat=len(groups))]
    return float(np.mean(vals)), float(np.std(vals))


def test_paired_acceptance_against_exhaustive_bootstrap():
    a = np.array([1, 1, 1, 0, 1, 0], bool)
    b = np.array([0, 0, 0, 0, 1, 1], bool)
    d = a.astype(int) - b.astype(int)
    r = metrics.paired_acceptance(a, b, n_boot=20000)
    assert (r["gained"], r["lost"], r["n"]) == (3, 1, 6) and r["delta"] == pytest.approx(a.mean() - b.mean())
    _, sd = _exact_bootstrap(d, [[k] for k in range(6)])  # 6**6 resamples
    assert r["se"] == pytest.approx(sd, rel=0.03)
    # grouped: the three gains share a group, so resampling groups spreads delta more than single pairs
    groups = [0, 0, 0, 1, 2, 3]
    members = [[k for k, g in enumerate(groups) if g == h] for h in range(4)]
    rg = metrics.paired_acceptance(a, b, groups=np.array(groups) * 7, n_boot=20000)  # any group ids
    mean_g, sd_g = _exact_bootstrap(d, members)
    assert rg["delta"] == r["delta"] and rg["se"] == pytest.approx(sd_g, rel=0.03) and sd_g > 1.2 * sd
    assert rg["ci"][0] < mean_g < rg["ci"][1]
    assert metrics.paired_acceptance(a, b, groups, seed=5) == metrics.paired_acceptance(a, b, groups, seed=5)
    with pytest.raises(ValueError, match="equal-length"):
        metrics.paired_acceptance(a, b[:3])
    with pytest.raises(ValueError, match="groups has 2 entries"):
        metrics.paired_acceptance(a, b, groups=[0, 1])


def test_paired_acceptance_single_pair_groups_agree_with_the_ungrouped_bootstrap():
    rng = np.random.default_rng(4)
    a, b = rng.random(5000) < 0.8, rng.random(5000) < 0.75  # 5000 groups: replicates drawn in several chunks
    grouped = metrics.paired_acceptance(a, b, groups=np.arange(5000), n_boot=1000)
    single = metrics.paired_acceptance(a, b, n_boot=1000)
    exact_sd = np.std(a.astype(int) - b.astype(int)) / np.sqrt(5000)  # the bootstrap's SD of a mean
    assert grouped["se"] == pytest.approx(exact_sd, rel=0.15) and single["se"] == pytest.approx(exact_sd, rel=0.15)
    with pytest.raises(ValueError, match="n_boot must be at least 2"):
        metrics.paired_acceptance(a, b, n_boot=1)


def test_spread_of_equal_embeddings_is_zero():
    assert abs(metrics.embedding_spread(np.tile([[0.6, 0.8]], (5, 1)))) < 1e-12
    assert metrics.embedding_spread(np.eye(4)) > 0.4
