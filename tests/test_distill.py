import shutil

import numpy as np
import pytest

from facecore.evaluation.embed import file_key
from facecore.training import teachers
from facecore.training.data import scan_identities
from facecore.training.train import TrainConfig, train
from test_teachers import ToyTeacher


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(teachers._TEACHERS, "toy", ToyTeacher)  # registered for this test only


@pytest.fixture
def unlabelled(data_dir, tmp_path):
    """20 CelebA crops of identities the tiny run does not train on, in one flat folder."""
    root = data_dir / "celeba-crops"
    ids = sorted(root.iterdir(), key=lambda d: -len(list(d.iterdir())))[6:]
    dst = tmp_path / "unlabelled"
    dst.mkdir()
    for i, f in enumerate(sorted(p for d in ids[:10] for p in sorted(d.iterdir())[:2])):
        shutil.copy(f, dst / f"{i:03d}.jpg")
    return dst


def _cfg(data_dir, tmp_path, **kw) -> TrainConfig:
    base = dict(data_dir=str(data_dir / "celeba-crops"), arch="efficientnet-b0", loss="distill",
                loss_kwargs={"teacher_dim": 12, "pair_weight": 1.0}, teacher="toy", max_identities=6, min_images=10,
                epochs=2, batch_size=16, max_steps_per_epoch=3, lfw_dir=None, cache_dir=str(tmp_path / "cache"),
                lr=0.05, bn_calibration_batches=1, embedding_dim=32, num_threads=1)
    return TrainConfig(**{**base, **kw})


def test_distillation_run_on_labelled_and_unlabelled_faces(toy, data_dir, unlabelled, tmp_path):
    h = train(_cfg(data_dir, tmp_path, unlabelled_dir=str(unlabelled)), tmp_path / "run", progress=False)
    assert len(h) == 2 and np.isfinite(h.train_loss).all() and np.isfinite(h.val_loss).all()
    assert "val_acc" in h and h.samples.iloc[0] == 3 * 16
    cached = list((tmp_path / "cache" / "teacher").rglob("*.npz"))
    fs = scan_identities(data_dir / "celeba-crops", 10, 6)
    files = [fs.root / p for p in fs.paths] + sorted(unlabelled.iterdir())
    assert len(cached) == len({file_key(f) for f in files})  # every crop's teacher embedding (cached by content)
    again = train(_cfg(data_dir, tmp_path, unlabelled_dir=str(unlabelled), epochs=3), tmp_path / "run2", progress=False)
    assert len(again) == 3  # the cached targets serve a second run


def test_teacher_needs_the_distill_loss_and_its_size(toy, data_dir, tmp_path):
    with pytest.raises(ValueError, match="teacher='toy' needs loss='distill'"):
        train(_cfg(data_dir, tmp_path, loss="arcface", loss_kwargs={}), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="gives 12-d embeddings but the distill loss was built with teacher_dim=128"):
        train(_cfg(data_dir, tmp_path, loss_kwargs={}), tmp_path / "b", progress=False)


def test_sharded_teacher_cache_fill(toy, unlabelled, tmp_path, capsys):
    from facecore.training.distill import main

    cache = tmp_path / "tc"
    assert main([str(unlabelled), "--teacher", "toy", "--shard", "1/3", "--cache_dir", str(cache)]) == 0
    files = sorted(unlabelled.iterdir())
    cached = {p.stem for p in cache.rglob("*.npz")}
    assert cached == {file_key(f) for f in files[1::3]}  # every third file from the second, nothing else
    assert main([str(unlabelled), "--teacher", "toy", "--shard", "0/3", "--cache_dir", str(cache)]) == 0
    assert len({p.stem for p in cache.rglob("*.npz")}) == len({file_key(f) for f in files[0::3] + files[1::3]})
    assert main([str(unlabelled), "--teacher", "toy", "--shard", "3/3"]) == 2
    assert main([str(tmp_path / "nowhere"), "--teacher", "toy"]) == 2
    err = capsys.readouterr().err
    assert "--shard must be K/N with 0 <= K < N, got '3/3'" in err and "unlabelled faces: no folder" in err


def test_center_targets_against_a_brute_force_reference():
    from facecore.training.distill import center_targets

    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 8)) * 0.2 + 3.0  # a shared part far larger than the rest, as dlib's
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    c, mean = center_targets(t)
    for i in range(len(t)):
        d = t[i] - t.mean(axis=0)
        np.testing.assert_allclose(c[i], d / np.sqrt((d ** 2).sum()), atol=2e-5)  # float32 targets
    np.testing.assert_allclose(mean, t.mean(axis=0), rtol=1e-6)
    assert (t @ t.T).min() > 0.9 and abs((c @ c.T)[np.triu_indices(50, 1)].mean()) < 0.1
