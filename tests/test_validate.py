import numpy as np

from facecore.training.validate import _same_pairs, evaluate_pairs


def test_same_pairs_match_brute_force():
    labels = np.random.default_rng(0).integers(0, 30, 200)
    brute = {(i, j) for i in range(200) for j in range(i + 1, 200) if labels[i] == labels[j]}
    got = {tuple(sorted(p)) for p in _same_pairs(labels).tolist()}
    assert got == brute and len(_same_pairs(labels)) == len(brute)


def test_pairs_are_found_when_most_identities_have_one_validation_image():
    # 9,000 singletons and 20 identities with 2 images: random draws would find no same pair
    labels = np.concatenate([np.arange(9000), np.repeat(np.arange(9000, 9020), 2)])
    centres = np.random.default_rng(0).normal(size=(9020, 64))
    emb = (centres / np.linalg.norm(centres, axis=1, keepdims=True))[labels]  # the same identity: cosine 1
    assert evaluate_pairs(emb, labels) == 1.0
    assert evaluate_pairs(np.ones((len(labels), 4)) / 2, labels) == 0.5  # all equal: no threshold helps
    assert np.isnan(evaluate_pairs(np.eye(50), np.arange(50)))  # no identity with two images


def test_pair_accuracy_matches_brute_force_threshold_search():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(40), 3)
    emb = rng.normal(size=(120, 8)) + 2 * rng.normal(size=(40, 8))[labels]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    acc = evaluate_pairs(emb, labels, max_pairs=10**6)  # every same pair, as many different ones
    pos = _same_pairs(labels)
    assert len(pos) == 40 * 3
    # brute force over all thresholds on the same pairs: the negatives are drawn with the same seed
    r = np.random.default_rng(0)
    neg = np.zeros((0, 2), np.int64)
    while len(neg) < len(pos):
        i, j = r.integers(0, 120, (2, 2 * len(pos)))
        neg = np.concatenate([neg, np.stack([i, j], 1)[labels[i] != labels[j]]])
    neg = neg[: len(pos)]
    s_pos, s_neg = (emb[pos[:, 0]] * emb[pos[:, 1]]).sum(1), (emb[neg[:, 0]] * emb[neg[:, 1]]).sum(1)
    best = max(((s_pos >= t).sum() + (s_neg < t).sum()) / (2 * len(pos)) for t in np.r_[s_pos, s_neg, 9.0])
    assert abs(acc - best) < 1e-12 and 0.6 < acc < 1.0
