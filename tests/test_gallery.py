"""Gallery: both people_faces layouts, templates, caching, and reporting of unusable photos."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import need_data
from facecore.evaluation.embed import embed_files
from facecore.networks.models import checkpoint_meta, create_model, load_embedder, save_checkpoint
from facecore.recognition.gallery import Gallery, build_gallery, find_people, skipped_people
from facecore.recognition.tracking import UNKNOWN


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "b0.pt"
    save_checkpoint(path, create_model("efficientnet-b0"), checkpoint_meta("efficientnet-b0", 512, 64))
    return load_embedder(path)


@pytest.fixture(scope="module")
def photos() -> dict[str, Path]:
    root = need_data("demo", "people_faces")
    return {p.parent.name: p for p in sorted(root.glob("*/*.png"))}


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_find_people_reads_both_layouts(tmp_path):
    _touch(tmp_path / "Ann" / "1.jpg")
    _touch(tmp_path / "Ann" / "sub" / "2.PNG")
    _touch(tmp_path / "Ann.png")  # a flat photo of a person who also has a folder
    _touch(tmp_path / "Bob.jpeg")
    _touch(tmp_path / "Cy" / "notes.txt")  # no photo: not a person
    _touch(tmp_path / ".hidden.jpg")
    _touch(tmp_path / "Ann" / ".DS_Store.jpg")
    _touch(tmp_path / "README.md")
    got = find_people(tmp_path)
    ann = [tmp_path / "Ann" / "1.jpg", tmp_path / "Ann" / "sub" / "2.PNG", tmp_path / "Ann.png"]
    assert got == {"Ann": sorted(ann), "Bob": [tmp_path / "Bob.jpeg"]}
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_people(tmp_path / "nowhere")


def test_label_threshold_against_a_loop():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3, 8)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = rng.normal(size=(20, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    gal = Gallery(["a", "b", "c"], g)
    for thr in (-1.0, 0.2, 0.5):
        ref = []
        for x in q:
            sims = [float(x @ e) for e in g]
            k = int(np.argmax(sims))
            ref.append(("abc"[k] if sims[k] >= thr else UNKNOWN, sims[k]))
        got = gal.label(q, thr)
        assert [n for n, _ in got] == [n for n, _ in ref]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in ref], rtol=1e-5)
    assert all(n == UNKNOWN for n, _ in Gallery([], np.zeros((0, 8), np.float32)).label(q, -1.0))


def test_build_templates_cache_and_problems(tmp_path, embedder, photos):
    from PIL import Image

    people = tmp_path / "people"
    (people / "Ann").mkdir(parents=True)
    a, b = (Image.open(photos[n]).convert("RGB") for n in sorted(photos))
    a, b = (im.resize((im.width * 256 // im.height, 256)) for im in (a, b))  # small: fast to detect
    a.save(people / "Ann" / "1.png")  # folder layout, two photos
    b.save(people / "Ann" / "2.png")
    b.save(people / "Bob.png")  # flat layout
    duo = Image.new("RGB", (a.width + b.width, 256))
    duo.paste(a, (0, 0))
    duo.paste(b, (a.width, 0))
    duo.save(people / "Duo.png")  # two faces: reported, the centre-largest one enrolled
    Image.new("RGB", (200, 200)).save(people / "Ann" / "black.png")  # no face: reported, not fatal
    Image.new("RGB", (200, 200)).save(people / "Nobody.png")  # no usable photo: not enrolled
    cache = tmp_path / "cache"

    with pytest.warns(UserWarning) as rec:
        gal = build_gallery(people, embedder, cache_dir=cache)
    msgs = [str(w.message) for w in rec]
    assert any("black.png" in m and "no face" in m for m in msgs)
    assert any(m.startswith("Nobody") for m in msgs)
    assert any("Duo.png" in m and "faces found" in m for m in msgs)
    assert gal.names == ["Ann", "Bob", "Duo"] and gal.n_photos == [2, 1, 1]

    paths = [people / "Ann" / "1.png", people / "Ann" / "2.png", people / "Bob.png"]
    ref = embed_files(paths, embedder, progress=False)
    ann = ref.embeddings[:2].mean(axis=0)
    np.testing.assert_allclose(gal.embeddings[0], ann / np.linalg.norm(ann), atol=1e-5)
    np.testing.assert_allclose(gal.embeddings[1], ref.embeddings[2], atol=1e-5)

    calls = []
    real_embed = embedder.embed

    def counting_embed(crops, *a, **kw):
        calls.append(len(crops))
        return real_embed(crops, *a, **kw)

    from facecore.detection.detectors import create_detector

    class NoDetector:  # the default detector's name and settings: the cache key matches, nothing is detected
        name, settings = "mtcnn", create_detector("mtcnn").settings

        def detect(self, images):
            raise AssertionError("a cached photo was detected again")

    embedder.embed = counting_embed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = build_gallery(people, embedder, detector=NoDetector(), cache_dir=cache)
            assert calls == [] and again.names == gal.names
            np.testing.assert_array_equal(again.embeddings, gal.embeddings)
            b.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(people / "Bob.png")  # changed: only it is embedded
            changed = build_gallery(people, embedder, cache_dir=cache)
    finally:
        del embedder.embed
    assert calls == [1]
    np.testing.assert_array_equal(changed.embeddings[0], gal.embeddings[0])


def test_person_folders_without_a_readable_photo_are_named(tmp_path, embedder):
    (tmp_path / "Eve").mkdir()  # empty
    _touch(tmp_path / "José Núñez" / "a.heic")
    _touch(tmp_path / "José Núñez" / "b.GIF")
    _touch(tmp_path / ".hidden_person" / "x.heic")
    _touch(tmp_path / "Ann" / ".x.jpg")  # only a hidden photo
    _touch(tmp_path / "README.md")
    got = skipped_people(tmp_path)
    assert len(got) == 3 and "Ann" in got[0] and "Eve" in got[1] and "no visible file" in got[1], got
    assert "José Núñez: no photo" in got[2] and "a.heic, b.GIF" in got[2] and "not enrolled" in got[2]
    with pytest.warns(UserWarning) as rec:
        build_gallery(tmp_path, embedder, cache_dir=None)
    assert [str(w.message) for w in rec][:3] == got


def test_empty_gallery_warns_and_labels_unknown(tmp_path, embedder):
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="every face will be labelled Unknown"):
        gal = build_gallery(tmp_path / "empty", embedder, cache_dir=None)
    assert len(gal) == 0 and gal.embeddings.shape == (0, 512)
    labels = gal.label(np.ones((2, 512), np.float32) / np.sqrt(512), -1.0)
    assert [n for n, _ in labels] == [UNKNOWN] * 2 and all(np.isnan(s) for _, s in labels)
