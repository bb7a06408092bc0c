"""IoU, assignment and track motion against brute-force references."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from facecore.recognition.tracking import UNKNOWN, FlowTracker, Track, iou_matrix, match_boxes, max_weight_assignment


def _random_boxes(rng: np.random.Generator, n: int, size: int = 40) -> np.ndarray:
    xy = rng.integers(0, size, (n, 2))
    wh = rng.integers(0, size // 2, (n, 2))  # zero widths included
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float64)


def _raster_iou(a: np.ndarray, b: np.ndarray, size: int = 80) -> float:
    """IoU of two integer boxes by counting unit pixels on a grid."""
    def mask(box):
        m = np.zeros((size, size), bool)
        m[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = True
        return m

    ma, mb = mask(a), mask(b)
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else 0.0


def _best_total(weight: np.ndarray) -> float:
    """Largest total weight of a one-to-one partial matching, over all of them."""
    n, m = weight.shape
    best = 0.0
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                best = max(best, float(sum(weight[r, c] for r, c in zip(rows, cols))))
    return best


def test_iou_matrix_matches_pixel_counting():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = _random_boxes(rng, 4), _random_boxes(rng, 3)
        ref = np.array([[_raster_iou(x, y) for y in b] for x in a])
        np.testing.assert_allclose(iou_matrix(a, b), ref, atol=1e-12)
    assert iou_matrix(np.zeros((0, 4)), a).shape == (0, 4)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 5), (5, 2), (4, 4), (6, 3)])
def test_assignment_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(15):
        w = rng.random(shape)
        w[rng.random(shape) < 0.3] = 0.0
        pairs = max_weight_assignment(w)
        assert len(pairs) == min(shape)
        assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
        assert sum(w[r, c] for r, c in pairs) == pytest.approx(_best_total(w), abs=1e-9)
    assert max_weight_assignment(np.zeros((0, 3))) == []


def test_match_boxes_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(40):
        a = _random_boxes(rng, int(rng.integers(0, 5)))
        b = np.concatenate([a[: int(rng.integers(0, len(a) + 1))] + rng.normal(0, 4, (1, 4)),
                            _random_boxes(rng, int(rng.integers(0, 3)))])
        iou = iou_matrix(a, b)
        valid = np.where(iou >= 0.3, iou, 0.0)
        pairs = match_boxes(a, b, 0.3)
        assert all(iou[i, j] >= 0.3 for i, j in pairs)
        assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
        total = float(sum(iou[i, j] for i, j in pairs))
        assert total == pytest.approx(_best_total(valid) if valid.size else 0.0, abs=1e-9)


def test_overlapping_faces_keep_their_tracks():
    # Greedy matching (best IoU first) would pair track 0 with detection 0 (IoU 0.90) and leave
    # track 1 unmatched; the largest total pairs both (0.82 + 0.74).
    tracks = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], float)
    dets = np.array([[0.5, 0, 10.5, 10], [-1, 0, 9, 10]], float)
    assert iou_matrix(tracks, dets)[0, 0] > iou_matrix(tracks, dets)[0, 1]
    assert match_boxes(tracks, dets, 0.6) == [(0, 1), (1, 0)]


def test_identity_is_majority_of_recent_votes():
    t = Track(0, np.zeros(4), np.zeros((5, 2)))
    assert t.identity[0] == UNKNOWN
    for name, sim in [("A", 0.9), ("B", 0.5), ("A", 0.7), ("B", 0.6)]:
        t.vote(name, sim)
    assert t.identity == ("B", pytest.approx(0.55))  # 2-2 tie: the latest vote's name wins
    t.vote("A", 0.8)
    assert t.identity == ("A", pytest.approx(0.8))
    for _ in range(5):
        t.vote(UNKNOWN, 0.1)  # only the last 5 votes count
    assert t.identity[0] == UNKNOWN


def test_flow_follows_a_shifted_texture_and_loses_flat_regions():
    rng = np.random.default_rng(2)
    import cv2

    base = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (0, 0), 2)
    shift = np.float32([[1, 0, 3.0], [0, 1, -2.0]])
    moved = cv2.warpAffine(base, shift, (320, 240), borderMode=cv2.BORDER_REFLECT)
    box = np.array([100.0, 80.0, 160.0, 150.0])
    lms = np.array([[115, 100], [145, 100], [130, 115], [118, 130], [142, 130]], float)
    t = Track(0, box * 2, lms * 2)  # frame pixels: the grey frames are half size
    flat = Track(1, np.array([20.0, 20.0, 60.0, 60.0]), lms)
    base[5:40, 5:40] = moved[5:40, 5:40] = 128
    FlowTracker().step(base, moved, [t, flat], scale=2.0)
    np.testing.assert_allclose(t.box, (box + [3, -2, 3, -2]) * 2, atol=0.5)
    np.testing.assert_allclose(t.landmarks, (lms + [3, -2]) * 2, atol=0.5)
    assert not t.lost and flat.lost
