"""as_rgb: paths, PIL images and arrays (RGB, grey, RGBA, BGR with the flag) -> one RGB array; anything
else is refused naming the parameter."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecore.core.images import as_rgb


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)


def test_path_pil_and_array_give_the_same_pixels(rgb, tmp_path):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert as_rgb(rgb) is rgb  # a contiguous RGB array passes through, no copy
    np.testing.assert_array_equal(as_rgb(tmp_path / "a.png"), rgb)
    np.testing.assert_array_equal(as_rgb(str(tmp_path / "a.png")), rgb)
    np.testing.assert_array_equal(as_rgb(Image.fromarray(rgb)), rgb)
    np.testing.assert_array_equal(as_rgb(Image.fromarray(rgb).convert("RGBA")), rgb)  # alpha dropped
    np.testing.assert_array_equal(as_rgb(np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])), rgb)


def test_grey_and_bgr(rgb):
    grey = rgb[:, :, 0]
    want = np.repeat(grey[:, :, None], 3, axis=2)
    for g in (grey, grey[:, :, None], Image.fromarray(grey)):
        np.testing.assert_array_equal(as_rgb(g), want)
    np.testing.assert_array_equal(as_rgb(grey, bgr=True), want)  # grey has no channel order
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    np.testing.assert_array_equal(as_rgb(bgr, bgr=True), rgb)
    np.testing.assert_array_equal(as_rgb(np.dstack([bgr, bgr[:, :, :1]]), bgr=True), rgb)  # BGRA
    assert as_rgb(bgr, bgr=True).flags["C_CONTIGUOUS"]


def test_bad_images_name_the_parameter(rgb, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    cases = [
        ([1, 2, 3], TypeError, r"^frame: expected a file path, a PIL image or an HxWx3 uint8 RGB array.*got list"),
        (rgb.astype(np.float32) / 255, ValueError, r"^frame: array of dtype float32; give uint8 .*\* 255"),
        (rgb[:, :, :2], ValueError, r"^frame: array of shape \(7, 9, 2\)"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, r"^frame: empty image"),
        (tmp_path / "none.jpg", FileNotFoundError, r"^frame=.*none\.jpg: no such file"),
        (tmp_path / "bad.jpg", ValueError, r"^frame=.*bad\.jpg: not a readable image"),
    ]
    for image, error, match in cases:
        with pytest.raises(error, match=match):
            as_rgb(image, param="frame")
    with pytest.raises(ValueError, match=r"^image: bgr=True applies to 3- or 4-channel arrays only, not to a PIL"):
        as_rgb(Image.fromarray(rgb), bgr=True)
