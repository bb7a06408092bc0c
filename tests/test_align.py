import math

import numpy as np
import pytest

from facecore.detection.align import (ARCFACE_TEMPLATE_112, apply_transform, eye_centres_error, similarity_transform,
                                      template, warp_face)


def test_template_maps_onto_itself():
    m = similarity_transform(template(112), template(112))
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_known_similarity_is_recovered(seed):
    rng = np.random.default_rng(seed)
    ang, scale, t = rng.uniform(-1, 1), rng.uniform(0.3, 3), rng.uniform(-50, 50, 2)
    r = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    src = rng.uniform(0, 200, (5, 2))
    dst = scale * src @ r.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * r, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-7)
    np.testing.assert_allclose(apply_transform(m, src), dst, atol=1e-7)


def test_least_squares_matches_brute_force_search():
    # noisy points: the closed form must be at least as good as any nearby similarity
    rng = np.random.default_rng(1)
    src = template(112) + rng.normal(0, 3, (5, 2))
    dst = template(112)
    m = similarity_transform(src, dst)
    best = ((apply_transform(m, src) - dst) ** 2).sum()
    a, b = m[0, 0], m[1, 0]
    for da, db, dx, dy in rng.normal(0, 0.01, (500, 4)):
        m2 = np.array([[a + da, -(b + db), m[0, 2] + dx * 10], [b + db, a + da, m[1, 2] + dy * 10]])
        assert ((apply_transform(m2, src) - dst) ** 2).sum() >= best - 1e-9


def test_no_reflection_even_for_mirrored_points():
    src = template(112)
    dst = src.copy()
    dst[:, 0] = 112 - dst[:, 0]
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_template_scales_with_size():
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE_112 * 2)
    with pytest.raises(ValueError):
        template(0)


def test_warp_puts_landmarks_on_template():
    # an image with bright dots at the "landmarks": after warping, the dots sit on the template
    rng = np.random.default_rng(3)
    ang, scale = 0.3, 1.7
    r = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    lms = (template(112) - 56) @ r.T * scale + [150, 140]
    img = np.zeros((300, 300, 3), np.uint8)
    for x, y in np.round(lms).astype(int):
        img[y - 2:y + 3, x - 2:x + 3] = 255
    crop = warp_face(img, np.round(lms), 112)
    for (tx, ty) in template(112):
        ys, xs = np.nonzero(crop[int(ty) - 5:int(ty) + 6, int(tx) - 5:int(tx) + 6, 0] > 100)
        assert len(xs) > 0
        assert abs(xs.mean() + int(tx) - 5 - tx) < 1.0 and abs(ys.mean() + int(ty) - 5 - ty) < 1.0
    del rng


def test_eye_error():
    found = np.stack([template(112)[:2] + [1, 0]])
    np.testing.assert_allclose(eye_centres_error(found), [[1, 1]])
