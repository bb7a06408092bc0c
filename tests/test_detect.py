import numpy as np
import pytest

from facecore.core.files import load_rgb
from facecore.detection.detect import Detection, FaceDetector, plausible_faces, select_face


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_plausible_faces_matches_a_brute_force_filter():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 150, (n, 2))], axis=1)
        scores = rng.uniform(0.7, 1.0, n)
        min_score, rel = float(rng.choice([0.0, 0.9, 0.95])), float(rng.choice([0.0, 0.5]))
        sides = [max(b[2] - b[0], b[3] - b[1]) for b in boxes]
        big = max([s for s, p in zip(sides, scores) if p >= min_score], default=0.0)
        expect = [i for i in range(n) if scores[i] >= min_score and sides[i] >= rel * big]
        assert plausible_faces(boxes, scores, min_score, rel).tolist() == expect


def test_plausible_faces_drops_low_scores_and_small_boxes_beside_a_close_up():
    boxes = [[0, 0, 100, 120], [200, 0, 235, 35], [300, 0, 400, 100], [0, 200, 30, 230]]
    assert plausible_faces(boxes, [0.99, 0.97, 0.8, 0.6]).tolist() == [0]  # hair beside a close-up, a dark blob
    assert plausible_faces(boxes[1:2], [0.97]).tolist() == [0]  # the same small box alone is a distant face
    assert plausible_faces(boxes, [0.99, 0.97, 0.8, 0.6], 0.0, 0.0).tolist() == [0, 1, 2, 3]  # both rules off
    assert plausible_faces(np.zeros((0, 4)), []).tolist() == []
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        plausible_faces(boxes[:2], [0.9])


def test_select_face_rules():
    det = Detection(np.array([[0, 0, 50, 50], [80, 80, 120, 120], [10, 10, 20, 20]], np.float32),
                    np.array([0.9, 0.95, 0.99], np.float32), np.zeros((3, 5, 2), np.float32))
    assert select_face(det, (200, 200), "largest") == 0
    assert select_face(det, (200, 200), "center") == 1
    assert select_face(det, (200, 200), "best") == 2
    assert select_face(Detection(), (200, 200)) == -1
    with pytest.raises(ValueError, match="center_largest"):
        select_face(det, (200, 200), "nope")


def test_real_lfw_face_matches_facenet_pytorch(detector, lfw_dir):
    from facenet_pytorch import MTCNN

    path = sorted(lfw_dir.glob("Aaron_Eckhart/*.jpg"))[0]
    img = load_rgb(path).rgb
    det = detector.detect([img])[0]
    assert len(det) >= 1
    i = select_face(det, img.shape[:2])
    lm = det.landmarks[i]
    assert lm[0, 0] < lm[1, 0]  # left eye left of right eye
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes above nose above mouth
    box = det.boxes[i]
    assert 0 <= box[0] < lm[:, 0].min() and lm[:, 0].max() < box[2] <= img.shape[1]
    _, _, ref = MTCNN(keep_all=True).detect(img, landmarks=True)
    ref = np.asarray(ref, np.float32)
    j = int(np.argmin(np.abs(ref[:, 0, 0] - lm[0, 0])))
    assert np.abs(ref[j] - lm).max() < 3.0  # same landmarks as the reference loop, within 3 px


def test_batch_of_mixed_sizes_equals_single_calls(detector, lfw_dir):
    paths = sorted(lfw_dir.glob("*/*.jpg"))[:4]
    imgs = [load_rgb(p).rgb for p in paths]
    imgs[1] = imgs[1][20:200, 10:240].copy()  # another size: another group
    together = detector.detect(imgs)
    for img, d in zip(imgs, together):
        alone = detector.detect([img])[0]
        assert len(alone) == len(d)
        np.testing.assert_allclose(alone.landmarks, d.landmarks, atol=0.05)


def test_no_face_in_noise(detector):
    img = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    assert len(detector.detect([img])[0]) == 0


def test_large_image_is_downscaled_and_mapped_back(detector, lfw_dir):
    import cv2

    img = load_rgb(sorted(lfw_dir.glob("Aaron_Eckhart/*.jpg"))[0]).rgb
    big = cv2.resize(img, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    d_small = detector.detect([img])[0]
    d_big = detector.detect([big])[0]
    i, j = select_face(d_small, img.shape[:2]), select_face(d_big, big.shape[:2])
    np.testing.assert_allclose(d_big.landmarks[j] / 8.0, d_small.landmarks[i], atol=2.0)


def test_bad_array_is_named():
    with pytest.raises(ValueError, match="image 0"):
        FaceDetector().detect([np.zeros((10, 10), np.uint8)])
