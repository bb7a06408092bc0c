"""Detectors and evaluation protocols by name, embedding-cache keys, CFP reading and alignment."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import need_data
from facecore.detection.align import template, warp_face
from facecore.detection.detect import Detection
from facecore.detection.detectors import create_detector, detector_key, register_detector
from facecore.evaluation.embed import embed_files, model_key
from facecore.evaluation.protocols import benchmark_table, evaluate, register_protocol, table_markdown
from facecore.networks.models import Embedder, checkpoint_meta


def tiny_embedder(seed: int = 0) -> Embedder:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 8))
    return Embedder(model.eval(), checkpoint_meta("tiny", 8, 32))


CALLS: list[int] = []


@register_detector("whole-image")
class WholeImage:
    """Toy detector: the whole image is one face, its landmarks the template shrunk by ``margin``."""

    def __init__(self, margin: float = 0.0):
        self.margin = margin

    def detect(self, images):
        CALLS.append(len(images))
        out = []
        for im in images:
            h, w = im.shape[:2]
            lm = (template(112) / 112.0 * (1 - 2 * self.margin) + self.margin) * [w, h]
            out.append(Detection(np.array([[0, 0, w - 1, h - 1]], np.float32), np.ones(1, np.float32),
                                 lm[None].astype(np.float32)))
        return out


@pytest.fixture()
def photos(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / "photos" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (90 + 10 * i, 80, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown detector 'nope'; valid names: .*mtcnn.*whole-image"):
        create_detector("nope")
    with pytest.raises(ValueError, match="unknown protocol 'nope'; valid names: cfp-ff, cfp-fp, id-rate, lfw"):
        evaluate("nope", tiny_embedder())


def test_detector_key_follows_name_and_settings():
    a, b = create_detector("mtcnn"), create_detector("mtcnn", device="cpu")
    assert detector_key(a) == detector_key(b)  # where it runs is no setting
    assert detector_key(create_detector("mtcnn", pad_frac=0.0)) != detector_key(a)
    assert detector_key(create_detector("whole-image", margin=0.1)) != detector_key(create_detector("whole-image"))
    assert detector_key(a).startswith("mtcnn-")


def test_toy_detector_through_embed_files_and_its_settings_key_the_cache(photos, tmp_path):
    emb, cache = tiny_embedder(), tmp_path / "cache"
    CALLS.clear()
    got = embed_files(photos, emb, detector=create_detector("whole-image"), cache_dir=cache, progress=False)
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    lms = [np.round(WholeImage().detect([im])[0].landmarks[0].astype(np.float64), 2) for im in imgs]  # as detect_align
    ref = [emb.embed(warp_face(im, lm, 112)[None], flip=True)[0] for im, lm in zip(imgs, lms)]
    np.testing.assert_allclose(got.embeddings, np.stack(ref), atol=1e-6)  # brute force, photo by photo
    assert got.ok.all() and CALLS[0] == 3
    CALLS.clear()
    again = embed_files(photos, emb, detector=create_detector("whole-image"), cache_dir=cache, progress=False)
    assert CALLS == [] and np.array_equal(again.embeddings, got.embeddings)  # same name and settings: cached
    moved = embed_files(photos, emb, detector=create_detector("whole-image", margin=0.2), cache_dir=cache,
                        progress=False)
    assert CALLS == [3] and not np.allclose(moved.embeddings, got.embeddings)  # a changed setting misses
    by_name = embed_files(photos, emb, detector="whole-image", cache_dir=cache, progress=False)
    assert CALLS == [3] and np.array_equal(by_name.embeddings, got.embeddings)  # a name works as well


def test_a_corrupt_cache_entry_is_recomputed_with_a_warning(photos, tmp_path):
    emb, cache = tiny_embedder(), tmp_path / "cache"
    first = embed_files(photos, emb, detector="whole-image", cache_dir=cache, progress=False)
    entries = sorted(cache.glob("*/*/*.npz"))
    assert len(entries) == 3
    entries[0].write_bytes(entries[0].read_bytes()[:50])  # torn: BadZipFile when read
    entries[1].write_bytes(b"")
    with pytest.warns(UserWarning, match="cache entry .*npz is unreadable") as rec:
        again = embed_files(photos, emb, detector="whole-image", cache_dir=cache, progress=False)
    named = [str(w.message).split()[3] for w in rec if "unreadable" in str(w.message)]
    assert sorted(named) == [str(entries[0]), str(entries[1])], [str(w.message) for w in rec]
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: read back without a warning
        embed_files(photos, emb, detector="whole-image", cache_dir=cache, progress=False)


def test_gallery_prunes_entries_of_removed_and_replaced_photos(tmp_path):
    from facecore.evaluation.embed import file_key
    from facecore.recognition.gallery import build_gallery

    rng = np.random.default_rng(1)
    people = tmp_path / "people"
    people.mkdir()
    for name in ("Ann", "Bob", "Cid"):
        Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(people / f"{name}.png")
    cache = tmp_path / "cache"
    build_gallery(people, tiny_embedder(), detector="whole-image", cache_dir=cache)
    keys = {p.stem: file_key(p) for p in people.iterdir()}
    assert {p.stem for p in cache.glob("*/*/*.npz")} == set(keys.values())
    (people / "Bob.png").unlink()
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(people / "Cid.png")  # replaced
    gal = build_gallery(people, tiny_embedder(), detector="whole-image", cache_dir=cache)
    assert gal.names == ["Ann", "Cid"]
    assert {p.stem for p in cache.glob("*/*/*.npz")} == {keys["Ann"], file_key(people / "Cid.png")}


def test_toy_protocol_in_the_benchmark_table(photos, monkeypatch):
    from facecore.evaluation.protocols import PROTOCOLS

    monkeypatch.setitem(PROTOCOLS, "toy-mean", None)  # so the toy is unregistered after the test
    @register_protocol("toy-mean")
    def toy(embedder, data_root, files=(), **_):
        e = embed_files(files, embedder, detector="whole-image", progress=False)
        return {"summary": {"toy": float(e.embeddings.mean()), "toy std": float(e.embeddings.std())}}

    models = {"a": tiny_embedder(0), "b": lambda: tiny_embedder(1)}
    table, results = benchmark_table(models, ["toy-mean"], options={"toy-mean": {"files": photos}}, reference=False)
    assert list(table.model) == ["a", "b"]
    for i, seed in enumerate((0, 1)):
        ref = embed_files(photos, tiny_embedder(seed), detector="whole-image", progress=False).embeddings
        assert table.loc[i, "toy"] == pytest.approx(float(ref.mean())) and table.loc[i, "toy std"] == pytest.approx(float(ref.std()))
    assert list(table.weights) == [model_key(tiny_embedder(0)), model_key(tiny_embedder(1))]  # what each row measured
    md = table_markdown(table)
    assert "weights" not in md and "| model | toy (%) |" in md and f"{table.loc[0, 'toy']:.2f} +- {table.loc[0, 'toy std']:.2f}" in md
    with pytest.raises(ValueError, match="unknown protocol"):
        benchmark_table(models, ["toy-mean", "nope"])
    with_refs, _ = benchmark_table({"a": tiny_embedder(0)}, ["toy-mean"], options={"toy-mean": {"files": photos}})
    assert list(with_refs.model) == ["a"]  # the published rows have no "toy" figure
    monkeypatch.setitem(PROTOCOLS, "toy-cfp", lambda embedder, data_root, **_: {"summary": {"CFP-FP": 50.0}})
    with_refs, _ = benchmark_table({"a": tiny_embedder(0)}, ["toy-cfp"])
    assert list(with_refs.model) == ["a", "ArcFace ResNet-50 / CASIA-WebFace (published)"]
    assert list(with_refs["CFP-FP"]) == [50.0, 95.56]


def test_verification_figures_match_brute_force():
    from facecore.evaluation.metrics import lfw_accuracy, verification

    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.5
    s = np.where(y, rng.normal(0.5, 0.2, 200), rng.normal(0.1, 0.2, 200))
    folds = np.repeat(np.arange(10), 20)
    v = verification(s, y, folds, fprs=[0.1])
    assert v["mean"] == lfw_accuracy(s, y, folds)["mean"]
    neg = np.sort(s[~y])[::-1]
    assert v["thresholds_by_fpr"]["0.1"] == neg[int(0.1 * len(neg))]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in s[y] for n in s[~y]])
    assert v["auc"] == pytest.approx(brute, abs=1e-12)


def test_cfp_pairs_and_fiducial_alignment():
    from facecore.detection.align import apply_transform, similarity_transform
    from facecore.evaluation.cfp import fiducial_points, read_fiducials, read_pairs

    root = need_data("cfp")
    for proto in ("FF", "FP"):
        p = read_pairs(root, proto)
        assert len(p) == 7000 and sorted(p.fold.unique()) == list(range(10)) and p.issame.sum() == 3500
        assert p.path1.str.contains("/frontal/").all()
        assert p.path2.str.contains("/profile/" if proto == "FP" else "/frontal/").all()
    fid = read_fiducials(str(root))
    assert len(fid) == 7000
    pts = fid["images/001/frontal/01.jpg"]
    src, dst = fiducial_points(pts)
    t = template(112)
    assert src[0][0] < src[1][0] and np.allclose(dst[0], t[0])  # the marked eye is left of the nose: template's left
    mirrored = pts * [-1, 1] + [200, 0]
    assert np.allclose(fiducial_points(mirrored)[1][0], t[1])  # mirrored: the right eye
    m = similarity_transform(src, dst)
    assert np.abs(apply_transform(m, src) - dst).max() < 12  # four points on the template within a few px
