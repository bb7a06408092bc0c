"""The 300-W reader, the augmentations' geometry, the landmark model's decoding and the custom aligner."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import need_data
from facecore.detection import landmarks as lmk
from facecore.detection.landmarks_data import (FLIP_ORDER, Augment, LandmarkDataset, LandmarkFace, box_from_points,
                                               colour_jitter, crop_matrix, five_points, hflip, make_sample, map_points,
                                               read_pts)

# An upright synthetic face in a 120x140 image: left eye, right eye, nose, mouth left, mouth right.
FACE5 = np.array([[45.0, 55.0], [78.0, 53.0], [62.0, 72.0], [49.0, 92.0], [75.0, 91.0]])
BOX = np.array([25.0, 20.0, 100.0, 110.0])


def _pts_text(points: np.ndarray, n: int | None = None) -> str:
    lines = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    return f"version: 1\nn_points: {n or len(points)}\n{{\n{lines}\n}}\n"


def _blob_image(points: np.ndarray, shape=(120, 140), sigma: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.float64)
    for x, y in points:
        img = np.maximum(img, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return np.repeat((255 * img).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(crop: np.ndarray) -> np.ndarray:
    w = crop[..., 0].astype(np.float64)
    w = np.where(w > 0.2 * w.max(), w, 0)
    yy, xx = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


# -- .pts reader ------------------------------------------------------------------------------

def test_read_pts_roundtrip(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 150, (68, 2))
    f = tmp_path / "a.pts"
    f.write_text(_pts_text(pts))
    np.testing.assert_allclose(read_pts(f), pts, atol=1e-3)


@pytest.mark.parametrize("mangle, why", [
    (lambda t: t.replace("n_points: 68", "n_points: 67"), "n_points is 67"),
    (lambda t: t.replace("{\n", ""), "'{'"),
    (lambda t: t.replace("}\n", ""), "'}'"),
    (lambda t: t.replace("\n1.000 2.000\n", "\n1.000 oops\n"), "not two numbers"),
    (lambda t: "\n".join(t.split("\n")[:-4] + t.split("\n")[-3:]), "67 point lines"),
    (lambda t: t.replace("version: 1\n", ""), "version"),
])
def test_read_pts_malformed_names_the_file(tmp_path, mangle, why):
    pts = np.zeros((68, 2))
    pts[5] = 1, 2
    f = tmp_path / "broken_face.pts"
    f.write_text(mangle(_pts_text(pts)))
    with pytest.raises(ValueError) as e:
        read_pts(f)
    assert "broken_face.pts" in str(e.value) and why in str(e.value)


def test_read_pts_real_files():
    d = need_data("landmarks-300w", "helen_test")
    files = sorted(d.glob("*.pts"))[:5]
    for f in files:
        p = read_pts(f)
        assert p.shape == (68, 2) and np.isfinite(p).all()
        assert p[36:42, 0].mean() < p[42:48, 0].mean()  # image-left eye first


def test_load_landmark_folders_pairs_images_and_points(tmp_path):
    import cv2

    from facecore.detection.landmarks_data import load_landmark_folders

    (tmp_path / "afw").mkdir()
    pts = np.random.default_rng(5).uniform(10, 50, (68, 2))
    for name in ("b", "a"):
        cv2.imwrite(str(tmp_path / "afw" / f"{name}.jpg"), np.full((60, 70, 3), 128, np.uint8))
        (tmp_path / "afw" / f"{name}.pts").write_text(_pts_text(pts))
    faces = load_landmark_folders(["afw"], root=tmp_path)
    assert [f.path.rsplit("/", 1)[1] for f in faces] == ["a.jpg", "b.jpg"]
    assert faces[0].image.shape == (60, 70, 3) and faces[0].points68.shape == (68, 2)
    assert len(load_landmark_folders(["afw"], root=tmp_path, limit=1)) == 1
    (tmp_path / "afw" / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="a.pts has no image"):
        load_landmark_folders(["afw"], root=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_landmark_folders(["nope"], root=tmp_path)


def test_five_points_brute_force():
    p = np.random.default_rng(1).uniform(0, 100, (68, 2))
    want = [p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]
    np.testing.assert_allclose(five_points(p), want)


def test_box_from_points_is_mtcnn_like():
    p = np.random.default_rng(2).uniform(30, 110, (68, 2))
    b = box_from_points(p)
    lo, hi = p.min(0), p.max(0)
    assert b[1] < lo[1] - 0.25 * (hi - lo)[1]  # MTCNN boxes reach well above the brows
    rng = np.random.default_rng(0)
    spread = np.std([box_from_points(p, rng) for _ in range(500)], axis=0)
    assert np.all(spread > 0) and np.all(spread < 0.1 * (hi - lo).max())


# -- augmentation geometry ----------------------------------------------------------------------

def test_flip_swaps_labels_and_matches_brute_force_mirror():
    img = np.random.default_rng(3).integers(0, 255, (120, 140, 3), dtype=np.uint8)
    size, margin, angle, scale, shift = 64, 0.2, 12.0, 1.05, (0.02, -0.03)
    crop, pts = make_sample(img, FACE5, BOX, size, margin, angle, scale, shift, flip=True)
    # Brute force: mirror the image, its points and box, then crop with the mirrored turn and shift.
    w = img.shape[1]
    mimg = np.ascontiguousarray(img[:, ::-1])
    mpts = np.stack([w - 1 - FACE5[:, 0], FACE5[:, 1]], 1)[list(FLIP_ORDER)]
    mbox = np.array([w - 1 - BOX[2], BOX[1], w - 1 - BOX[0], BOX[3]])
    want_crop, want_pts = make_sample(mimg, mpts, mbox, size, margin, -angle, scale, (-shift[0], shift[1]))
    np.testing.assert_allclose(pts, want_pts, atol=1e-6)
    diff = np.abs(crop.astype(int) - want_crop.astype(int))  # OpenCV samples at 1/32 px: noise differs a little
    assert diff.mean() < 0.5 and diff.max() <= 8
    # Labels: the image-left eye / mouth corner is still point 0 / 3 after the flip.
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
    plain_crop, plain_pts = make_sample(img, FACE5, BOX, size, margin, angle, scale, shift)
    np.testing.assert_allclose(pts[0], [size - 1 - plain_pts[1, 0], plain_pts[1, 1]], atol=1e-9)
    np.testing.assert_array_equal(crop, plain_crop[:, ::-1])


def test_hflip_twice_is_identity():
    crop = np.random.default_rng(4).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    c2, p2 = hflip(*hflip(crop, FACE5 / 4))
    np.testing.assert_array_equal(c2, crop)
    np.testing.assert_allclose(p2, FACE5 / 4)


@pytest.mark.parametrize("angle", [-30.0, -7.0, 0.0, 25.0])
@pytest.mark.parametrize("flip", [False, True])
def test_rotation_moves_points_with_the_image(angle, flip):
    size = 96
    for k in range(5):  # one bright dot at a time: its crop centroid must be where its point went
        img = _blob_image(FACE5[k:k + 1])
        crop, pts = make_sample(img, FACE5, BOX, size, 0.2, angle, 0.95, (0.03, -0.02), flip=flip)
        j = FLIP_ORDER.index(k) if flip else k
        np.testing.assert_allclose(_centroid(crop), pts[j], atol=0.25)


def test_rotation_turns_counter_clockwise_on_screen():
    m0, m1 = crop_matrix(BOX, 64, 0.2), crop_matrix(BOX, 64, 0.2, angle_deg=20)
    p0, p1 = map_points(m0, FACE5), map_points(m1, FACE5)
    a0 = np.arctan2(-(p0[1, 1] - p0[0, 1]), p0[1, 0] - p0[0, 0])  # y up
    a1 = np.arctan2(-(p1[1, 1] - p1[0, 1]), p1[1, 0] - p1[0, 0])
    assert np.rad2deg(a1 - a0) == pytest.approx(20, abs=1e-6)


def test_dataset_targets_and_colour_jitter():
    img = _blob_image(FACE5)
    face = LandmarkFace("synthetic", img, np.zeros((68, 2)))
    face.points68[36:42], face.points68[42:48], face.points68[30] = FACE5[0], FACE5[1], FACE5[2]
    face.points68[48], face.points68[54] = FACE5[3], FACE5[4]
    face.points68[:17] = np.linspace([30, 40], [95, 40], 17)  # brows/jaw extent for the box
    face.points68[8] = 62, 105
    x, y = LandmarkDataset([face], 48, 0.2, Augment(colour=0.0), seed=0)[0]
    assert x.shape == (3, 48, 48) and y.shape == (5, 2) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert y[0, 0] < y[1, 0] and torch.all((y > 0) & (y < 1))
    jit = colour_jitter(img, np.random.default_rng(0), 0.4)
    assert jit.shape == img.shape and jit.dtype == np.uint8


# -- model, metrics, callable --------------------------------------------------------------------

def test_soft_argmax_peaks_at_cell_centres():
    logits = torch.full((1, 2, 8, 8), -50.0)
    logits[0, 0, 2, 5] = logits[0, 1, 7, 0] = 50.0
    p = lmk.soft_argmax(logits, 32).numpy()[0] * 32  # stride 4: cell j centred on pixel 4j + 1.5
    np.testing.assert_allclose(p, [[21.5, 9.5], [1.5, 29.5]], atol=1e-4)


def test_nme_and_matching_brute_force():
    gt = FACE5[None].repeat(2, 0)
    pred = gt.copy()
    pred[0, 0] += [3, 4]  # 5 px off on one eye of face 0
    iod = np.linalg.norm(FACE5[1] - FACE5[0])
    np.testing.assert_allclose(lmk.nme(pred, gt), [2.5 / iod, 0.0])
    boxes = [np.array([[0, 0, 20, 20], BOX]), np.zeros((0, 4)), np.array([[50, 0, 140, 120]])]
    np.testing.assert_array_equal(lmk.match_boxes(boxes, FACE5[None].repeat(3, 0)), [1, -1, -1])


class _BlobFinder(nn.Module):
    """A stand-in model: every point is the brightness centroid of the crop (full-resolution soft-argmax)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lmk.soft_argmax((x[:, :1] + 1).clamp_min(1e-9).log().repeat(1, 5, 1, 1), x.shape[-1])


@pytest.mark.parametrize("flip", [False, True])
def test_landmarker_maps_crop_points_back_to_the_image(flip):
    target = np.array([70.3, 61.7])
    f = lmk.Landmarker(_BlobFinder(), lmk.landmarker_meta("none", 64, 0.2), flip=flip)
    out = f(_blob_image(target[None], sigma=2.0), np.array([BOX, BOX + [3, -4, 6, 2]]))
    assert out.shape == (2, 5, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.broadcast_to(target, out.shape), atol=0.1)


def test_saved_landmarker_loads_and_returns_n_5_2(tmp_path):
    path = tmp_path / "lm.pt"
    lmk.save_landmarker(path, lmk.create_landmark_model("heatmap-s"), lmk.landmarker_meta("heatmap-s", 64, 0.2))
    blob = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())
    f = lmk.load_landmarker(path)
    img = np.random.default_rng(0).integers(0, 255, (90, 110, 3), dtype=np.uint8)
    assert f.name == "custom"
    assert f(img, np.array([[10, 10, 60, 70], [30, 5, 100, 85]], np.float32)).shape == (2, 5, 2)
    assert f(img, np.zeros((0, 4))).shape == (0, 5, 2)
    with pytest.raises(ValueError, match="unknown landmark model"):
        lmk.create_landmark_model("nope")


def test_missing_weights_say_to_run_the_notebook(monkeypatch, tmp_path):
    monkeypatch.setattr(lmk, "default_landmarker_path", lambda: tmp_path / "landmarker.pt")
    with pytest.raises(FileNotFoundError, match="my-face-alignment.ipynb"):
        lmk.load_default_landmarker()


def test_shipped_landmarker_is_small_and_loads():
    path = lmk.default_landmarker_path()
    assert path.exists(), f"{path} missing: run notebooks/my-face-alignment.ipynb to train and write it"
    assert path.stat().st_size < 5 * 2**20
    f = lmk.load_default_landmarker()
    assert f.name == "custom" and f.meta["metrics"], "the shipped model should carry its test metrics"
    img = np.random.default_rng(0).integers(0, 255, (120, 140, 3), dtype=np.uint8)
    assert f(img, BOX[None]).shape == (1, 5, 2)


def test_align_folder_with_custom_landmarks_on_lfw(tmp_path):
    """End to end on 20 LFW photos: the custom aligner finds the faces and agrees with MTCNN's eyes."""
    from facecore.detection.folder import align_folder, landmarks_of

    src = need_data("lfw", "lfw-deepfunneled")
    custom = align_folder(src, tmp_path / "custom", landmarks="custom", limit=20, num_workers=0, progress=False)
    mtcnn = align_folder(src, tmp_path / "mtcnn", landmarks="mtcnn", limit=20, num_workers=0, progress=False)
    assert len(custom) == 20 and (custom["status"] == "ok").sum() >= 19
    assert all((tmp_path / "custom" / o).exists() for o in custom.loc[custom["status"] == "ok", "output"])
    a, b = landmarks_of(custom), landmarks_of(mtcnn)
    ok = ~np.isnan(a).any((1, 2)) & ~np.isnan(b).any((1, 2))
    err = lmk.nme(a[ok], b[ok])
    assert np.median(err) < 0.08 and err.max() < 0.25, err


def test_landmarker_with_a_flipped_byte_is_refused(tmp_path):
    import shutil

    src = lmk.default_landmarker_path()
    if not src.exists():
        pytest.skip(f"{src} not in this checkout")
    bad = tmp_path / "landmarker.pt"
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"landmarker\.pt is corrupt"):
        lmk.load_landmarker(bad)
    shutil.copyfile(src, bad)
    lmk.load_landmarker(bad)  # the intact copy loads
