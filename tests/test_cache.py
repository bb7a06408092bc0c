"""Cache ownership (facecore.core.cache): only marked caches are pruned, only entries named by the key scheme,
and only those no gallery uses; a damaged entry of any cache is a miss with a one-line warning."""
from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from facecore.core.cache import MARKER, REFS, REFS_TTL_DAYS, cache_kind, claim, entries, prune
from facecore.detection.align import template
from facecore.detection.detect import Detection
from facecore.evaluation.embed import embed_files, file_key
from facecore.networks.models import Embedder, checkpoint_meta
from facecore.recognition.gallery import build_gallery

K1, K2, K3 = "1" * 40, "2" * 40, "3" * 40


def tiny_embedder() -> Embedder:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 8))
    return Embedder(model.eval(), checkpoint_meta("tiny", 8, 32))


class WholeImage:
    """Toy detector: the whole image is one face."""

    name, settings = "whole-image-test", {}

    def detect(self, images):
        out = []
        for im in images:
            h, w = im.shape[:2]
            lm = template(112) / 112.0 * [w, h]
            out.append(Detection(np.array([[0, 0, w - 1, h - 1]], np.float32), np.ones(1, np.float32),
                                 lm[None].astype(np.float32)))
        return out


def _entry(root, tag: str, key: str) -> str:
    p = root / tag / key[:2] / f"{key}.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return str(p.relative_to(root))


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_relative_to(root / REFS)}


def test_claim_marks_only_new_or_empty_folders(tmp_path):
    assert claim(tmp_path / "new" / "cache", "gallery") and cache_kind(tmp_path / "new" / "cache") == "gallery"
    (tmp_path / "empty").mkdir()
    assert claim(tmp_path / "empty", "embeddings") and not claim(tmp_path / "empty", "gallery")
    user = tmp_path / "user"
    (user / "exp1" / "run3").mkdir(parents=True)
    (user / "exp1" / "run3" / "results.npz").write_bytes(b"mine")
    assert not claim(user, "gallery") and not (user / MARKER).exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MARKER).write_text("{not json")
    assert cache_kind(tmp_path / "bad") is None and not claim(tmp_path / "bad", "gallery")


def test_prune_deletes_only_scheme_entries_no_gallery_uses(tmp_path):
    root = tmp_path / "c"
    assert claim(root, "gallery")
    a1, a2, b2 = _entry(root, "tagA", K1), _entry(root, "tagA", K2), _entry(root, "tagB", K2)
    foreign = ["exp1/run3/results.npz", f"tagA/{K3[:2]}/notes.npz", f"tagA/{K1[:2]}/{K3}.npz", f"tagA/{K1[:2]}/{K1}.npy"]
    for f in foreign:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"mine")
    outside = tmp_path / "outside" / K3[:2]
    outside.mkdir(parents=True)
    (outside / f"{K3}.npz").write_bytes(b"mine")
    (root / "linked").symlink_to(tmp_path / "outside")  # a link is never followed
    (root / "tagA" / K3[:2]).mkdir(exist_ok=True)
    (root / "tagA" / K3[:2] / f"{K3}.npz").symlink_to(outside / f"{K3}.npz")
    assert {str(p.relative_to(root)) for p, _, _ in entries(root)} == {a1, a2, b2}

    assert sorted(prune(root, "/gallery/one", "tagA", [K1, None])) == [root / a2, root / b2]  # no gallery names them
    assert _files(root) == {a1, MARKER, *foreign, f"tagA/{K3[:2]}/{K3}.npz"}  # the link too
    assert (outside / f"{K3}.npz").read_bytes() == b"mine"


def test_two_galleries_keep_each_other_and_expired_ones_are_pruned(tmp_path):
    root = tmp_path / "c"
    claim(root, "gallery")
    a, b, shared = _entry(root, "t", K1), _entry(root, "t", K2), _entry(root, "u", K3)
    assert sorted(prune(root, "/g/A", "t", [K1])) == [root / b, root / shared]
    b, shared = _entry(root, "t", K2), _entry(root, "u", K3)
    assert prune(root, "/g/B", "t", [K2]) == [root / shared]
    assert prune(root, "/g/A", "t", [K1]) == []  # A's rebuild keeps B's entry
    shared = _entry(root, "u", K3)
    assert prune(root, "/g/A", "u", [K3]) == [] and _files(root) == {MARKER, a, b, shared}  # A with another model
    refs = sorted((root / REFS).iterdir())
    assert len(refs) == 3 and all(json.loads(r.read_text())["keys"] for r in refs)
    old = time.time() - (REFS_TTL_DAYS + 1) * 86400
    for r in refs:
        if json.loads(r.read_text())["scope"] == "/g/B":
            os.utime(r, (old, old))  # B unused for longer than the TTL
    assert prune(root, "/g/A", "t", [K1]) == [root / b] and len(list((root / REFS).iterdir())) == 2


def test_nothing_is_pruned_outside_a_gallery_cache(tmp_path):
    for kind in (None, "embeddings"):
        root = tmp_path / str(kind)
        if kind:
            claim(root, kind)
        e = _entry(root, "t", K1)
        assert prune(root, "/g", "t", []) == [] and (root / e).exists()


@pytest.fixture
def people(tmp_path):
    rng = np.random.default_rng(0)
    out = {}
    for g in ("A", "B"):
        for name in ("Ann", "Bob"):
            p = tmp_path / g / name / "1.png"
            p.parent.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)).save(p)
        out[g] = tmp_path / g
    return out


def _quiet_build(folder, emb, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_gallery(folder, emb, detector=WholeImage(), cache_dir=cache)


def test_two_galleries_sharing_a_cache_do_not_reembed(tmp_path, people):
    emb, cache = tiny_embedder(), tmp_path / "cache"
    for g in ("A", "B"):
        _quiet_build(people[g], emb, cache)
    calls = []
    real = emb.embed
    emb.embed = lambda crops, *a, **kw: calls.append(len(crops)) or real(crops, *a, **kw)
    for g in ("A", "B", "A"):
        _quiet_build(people[g], emb, cache)
    assert calls == [] and cache_kind(cache) == "gallery"
    assert len(list(entries(cache))) == 4


def test_a_gallery_cache_at_a_user_folder_or_an_evaluation_cache_deletes_nothing(tmp_path, people):
    emb = tiny_embedder()
    user = tmp_path / "user"
    (user / "exp1" / "run3").mkdir(parents=True)
    (user / "exp1" / "run3" / "results.npz").write_bytes(b"mine")
    evaluation = tmp_path / "eval"
    embed_files(sorted(people["B"].rglob("*.png")), emb, aligned=True, cache_dir=evaluation, progress=False)
    kept = sorted(p for p, _, _ in entries(evaluation))
    assert cache_kind(evaluation) == "embeddings" and len(kept) == 2
    for cache in (user, evaluation):
        gal = _quiet_build(people["A"], emb, cache)
        assert gal.names == ["Ann", "Bob"]
    assert (user / "exp1" / "run3" / "results.npz").read_bytes() == b"mine"
    assert all(p.exists() for p in kept)


def test_damaged_entries_are_misses_with_one_warning_each(tmp_path, people):
    emb, cache = tiny_embedder(), tmp_path / "cache"
    photos = sorted(people["A"].rglob("*.png")) + sorted(people["B"].rglob("*.png"))
    first = embed_files(photos, emb, aligned=True, cache_dir=cache, progress=False)
    paths = {file_key(p): next(c for c, _, k in entries(cache) if k == file_key(p)) for p in photos}
    e0, e1, e2, e3 = (paths[file_key(p)] for p in photos)
    e0.unlink()
    e0.mkdir()  # a folder in its place
    np.savez(e1, emb=np.ones(16, np.float32), status=np.array("ok"), n_faces=np.array(1))  # another model's size
    np.savez(e2, emb=np.full(8, np.nan, np.float32), status=np.array("ok"), n_faces=np.array(1))
    e3.unlink()
    os.mkfifo(e3)  # would block a read
    with pytest.warns(UserWarning) as rec:
        again = embed_files(photos, emb, aligned=True, cache_dir=cache, progress=False)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 4 and all(len(m.splitlines()) == 1 for m in msgs), msgs
    for e, why in ((e0, "is not a file"), (e1, "another model"), (e2, "non-finite"), (e3, "is not a file")):
        assert any(str(e) in m and why in m for m in msgs), (why, msgs)
    np.testing.assert_allclose(again.embeddings, first.embeddings, atol=1e-6)
    assert e0.is_dir() and e3.is_fifo()  # not ours to replace: left alone
    with warnings.catch_warnings(record=True) as rec2:
        warnings.simplefilter("always")
        embed_files(photos, emb, aligned=True, cache_dir=cache, progress=False)
    assert len(rec2) == 2  # the two rewritten entries read back cleanly


def test_a_read_only_or_blocked_cache_is_a_warning(tmp_path, people):
    emb = tiny_embedder()
    photos = sorted(people["A"].rglob("*.png"))
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    with pytest.warns(UserWarning, match="cannot write") as rec:
        got = embed_files(photos, emb, aligned=True, cache_dir=blocked, progress=False)
    assert len(rec) == 1 and np.isfinite(got.embeddings).all()


def test_a_damaged_crop_cache_is_decoded_again(tmp_path):
    import cv2

    from facecore.training.data import load_crops, scan_identities

    for i in range(4):
        (tmp_path / "faces" / f"p{i % 2}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "faces" / f"p{i % 2}" / f"{i}.png"), np.full((8, 8, 3), 30 * i, np.uint8))
    fs = scan_identities(tmp_path / "faces")
    first = load_crops(fs, 8, tmp_path / "cache", progress=False)
    (entry,) = (tmp_path / "cache").glob("*.npy")
    for damage, why in ((lambda: entry.write_bytes(entry.read_bytes()[:100]), "unreadable"),
                        (lambda: np.save(entry, np.zeros((2, 8, 8, 3), np.uint8)), "not uint8"),
                        (lambda: (entry.unlink(), entry.mkdir()), "is not a file")):
        damage()
        with pytest.warns(UserWarning, match=why) as rec:
            again = load_crops(fs, 8, tmp_path / "cache", progress=False)
        assert len(rec) == 1 and np.array_equal(again, first)


def test_the_model_key_is_the_same_under_any_thread_count_and_sees_every_weight():
    from facecore.evaluation.embed import model_key

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2048, 1024))  # 2 M weights: a threaded sum
    emb = Embedder(model.eval(), checkpoint_meta("tiny", 1024, 32))
    threads = torch.get_num_threads()
    try:
        keys = set()
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            keys.add(model_key(emb))
    finally:
        torch.set_num_threads(threads)
    assert len(keys) == 1
    with torch.no_grad():
        model[1].weight[-1, -1] += 1e-3  # far past the first bytes
    assert model_key(emb) not in keys
