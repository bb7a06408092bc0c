import cv2
import numpy as np
import pytest

from conftest import need_data
from facecore.core.files import encode_jpeg, load_rgb
from facecore.detection.align import warp_face
from facecore.evaluation.embed import embed_files
from facecore.training import teachers
from facecore.training.teachers import DLIB_TEMPLATE_150, create_teacher, register_teacher, teacher_crops, teacher_names


class ToyTeacher:
    """Mean colour of the crop's four quadrants: a 12-d 'embedding'."""

    name, align_size, device = "toy", 32, "cpu"
    meta = {"align_size": 32, "input_size": 32, "embedding_dim": 12}
    cache_key = "toy-1"

    def align(self, image, box, landmarks):
        return warp_face(image, landmarks, 32)

    def embed(self, crops, batch_size=64, flip=False):
        q = [crops[:, a:a + 16, b:b + 16].mean(axis=(1, 2)) for a in (0, 16) for b in (0, 16)]
        e = np.concatenate(q, axis=1).astype(np.float32) + 1.0
        return e / np.linalg.norm(e, axis=1, keepdims=True)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(teachers._TEACHERS, "toy", ToyTeacher)  # registered for this test only
    return create_teacher("toy")


def test_registry_builds_by_name_and_lists_the_valid_names(toy):
    assert {"dlib", "onnx", "toy"} <= set(teacher_names()) and isinstance(toy, ToyTeacher)
    with pytest.raises(ValueError, match="unknown teacher 'nope'; valid names: .*dlib, .*onnx, .*register_teacher"):
        create_teacher("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_teacher("toy")(ToyTeacher)


def test_toy_teacher_through_teacher_crops_and_embed_files(toy, tmp_path):
    """A teacher's crops come from the alignment manifest; embed_files caches them under its cache_key."""
    from facecore.detection.folder import align_folder

    src = need_data("lfw", "lfw-deepfunneled")
    names = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Lamas/AJ_Lamas_0001.jpg"]
    srcdir = tmp_path / "src"
    for n in names:
        (srcdir / n).parent.mkdir(parents=True, exist_ok=True)
        (srcdir / n).write_bytes((src / n).read_bytes())
    align_folder(srcdir, tmp_path / "aligned", progress=False)
    out = teacher_crops(srcdir, tmp_path / "aligned", toy, tmp_path / "toy", progress=False)
    files = sorted(str(p) for p in out.rglob("*.jpg"))
    assert len(files) == 2 and load_rgb(files[0]).rgb.shape == (32, 32, 3)
    first = embed_files(files, toy, aligned=True, cache_dir=tmp_path / "cache", flip=False, progress=False)
    assert first.ok.all() and first.embeddings.shape == (2, 12)
    # the cache's ownership marker (facecore.core.cache) and one folder of entries for this teacher
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".facecore-cache.json", "toy-1-aligned-0"]
    again = embed_files(files, toy, aligned=True, cache_dir=tmp_path / "cache", flip=False, progress=False)
    np.testing.assert_array_equal(first.embeddings, again.embeddings)


@pytest.fixture(scope="module")
def lfw_face():
    """An LFW photo with our MTCNN box and landmarks of its face."""
    from facecore.detection.detectors import create_detector

    img = load_rgb(need_data("lfw", "lfw-deepfunneled") / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").rgb
    det = create_detector("mtcnn").detect([img])[0]
    return img, det.boxes[0], det.landmarks[0]


@pytest.mark.parametrize("framing", ["ours", "dlib"])
def test_dlib_teacher_unit_128d_and_stable_under_reencoding(lfw_face, framing):
    pytest.importorskip("dlib")
    img, box, lms = lfw_face
    t = create_teacher("dlib", framing=framing)
    chip = t.align(img, box, lms)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    again = cv2.imdecode(np.frombuffer(encode_jpeg(chip, 75), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    e = t.embed(np.stack([chip, again]), flip=True)
    assert e.shape == (2, 128) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert float(e[0] @ e[1]) > 0.99


def test_dlib_template_puts_our_landmarks_where_dlib_frames_the_face(lfw_face):
    """Our framing and dlib's own chip of the same face are nearly the same picture."""
    pytest.importorskip("dlib")
    img, box, lms = lfw_face
    ours = create_teacher("dlib", framing="ours").align(img, box, lms).astype(np.float64)
    theirs = create_teacher("dlib", framing="dlib").align(img, box, lms).astype(np.float64)
    assert np.abs(ours - theirs).mean() < 20  # mean grey-level difference
    assert DLIB_TEMPLATE_150[0, 0] < DLIB_TEMPLATE_150[1, 0] and DLIB_TEMPLATE_150[2, 1] < DLIB_TEMPLATE_150[3, 1]


def test_dlib_teacher_refuses_other_crop_sizes_and_framings():
    pytest.importorskip("dlib")
    with pytest.raises(ValueError, match="framing must be one of"):
        create_teacher("dlib", framing="tight")
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 150, 150, 3\) chips"):
        create_teacher("dlib").embed(np.zeros((1, 112, 112, 3), np.uint8))


def test_onnx_teacher_matches_the_torch_model_it_was_exported_from(tmp_path):
    """Any embedding model in ONNX: normalisation and input size as parameters, unit embeddings out."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import warnings

    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 16)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 32, 32), tmp_path / "m.onnx", input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
    t = create_teacher("onnx", path=tmp_path / "m.onnx", input_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    assert t.meta["embedding_dim"] == 16 and t.align_size == 32 and t.cache_key.startswith("onnx-")
    crops = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    x = (torch.from_numpy(crops).float() / 255 - torch.tensor([0.5, 0.4, 0.3])) / 0.2
    with torch.no_grad():
        ref = torch.nn.functional.normalize(net(x.permute(0, 3, 1, 2)), dim=1).numpy()
    np.testing.assert_allclose(t.embed(crops), ref, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no model file"):
        create_teacher("onnx", path=tmp_path / "missing.onnx")
