import os

import numpy as np
import pytest
import torch

from facecore.training.data import AUGMENTATIONS, PKSampler, augment, augmentation, scan_identities, shuffled_batches, split_per_identity, to_tensor


def test_pk_sampler_yields_p_identities_times_k_images():
    labels = np.repeat(np.arange(10), [2, 3, 5, 8, 8, 8, 9, 1, 4, 6])
    s = PKSampler(labels, p=4, k=3, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == len(labels) // 12
    for b in batches:
        assert len(b) == 12
        ids, counts = np.unique(labels[b], return_counts=True)
        assert len(ids) == 4 and set(counts) == {3}
    assert [b.tolist() for b in batches] != [b.tolist() for b in s]  # a new epoch reshuffles


def test_pk_sampler_needs_enough_identities():
    with pytest.raises(ValueError, match="P=5"):
        PKSampler(np.arange(3), p=5, k=2)


def test_shuffled_batches_cover_each_index_once():
    b = shuffled_batches(103, 10, seed=1, epoch=0)
    flat = np.concatenate(b)
    assert len(b) == 10 and len(set(flat.tolist())) == 100


def test_scan_and_split(data_dir):
    fs = scan_identities(data_dir / "celeba-crops", min_images=20, max_identities=5)
    assert len(fs.classes) == 5 and all(np.bincount(fs.labels) >= 20)
    tr, va = split_per_identity(fs, 0.2, seed=0)
    assert not set(tr.paths) & set(va.paths)
    assert len(tr) + len(va) == len(fs)
    assert set(tr.labels) == set(va.labels) == set(range(5))


def test_scan_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="align"):
        scan_identities(tmp_path / "nope")


def test_augment_keeps_shape_and_range():
    import torch

    x = to_tensor(np.random.default_rng(0).integers(0, 255, (4, 72, 72, 3), dtype=np.uint8), 64)
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == (4, 3, 64, 64) and float(y.min()) >= -1 and float(y.max()) <= 1


def _ramps(n: int) -> torch.Tensor:
    """A left-right gradient, ``n`` times: any mirror, shift, scale or rotation moves it; brightness/contrast do not."""
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 1, 3))
    return to_tensor(np.stack([ramp] * n), 64)


def _centred_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image cosine of the mean-removed pictures: 1 for the same picture up to gain and offset."""
    centred = lambda t: (t - t.mean(dim=(1, 2, 3), keepdim=True)).flatten(1)  # noqa: E731
    return torch.nn.functional.cosine_similarity(centred(a), centred(b), dim=1)


def test_photometric_augmentation_keeps_the_geometry():
    x = _ramps(8)
    y = augment(x, torch.Generator().manual_seed(0), **augmentation("photometric"))
    assert float(_centred_cos(y, x).min()) > 0.995  # the same picture up to gain and offset (and clipping at the range ends)
    full = augment(x, torch.Generator().manual_seed(0), **augmentation("full"))
    assert float(_centred_cos(full, x).min()) < 0.99
    assert augmentation("none") is None and set(AUGMENTATIONS) == {"full", "mirror", "photometric", "none"}


def test_mirror_augmentation_is_a_mirror_or_not_up_to_gain_and_offset():
    x = _ramps(16)
    y = augment(x, torch.Generator().manual_seed(0), **augmentation("mirror"))
    same, mirrored = _centred_cos(y, x), _centred_cos(y, x.flip(3))
    assert bool(((same > 0.99) | (mirrored > 0.99)).all())  # each is the picture or its exact mirror
    assert 0 < int((mirrored > 0.99).sum()) < 16  # some of both


def test_unknown_augmentation_is_refused_before_training(tmp_path):
    from facecore.training.train import TrainConfig, train

    cfg = TrainConfig(data_dir=str(tmp_path / "nowhere"), augment="strong", lfw_dir=None)
    with pytest.raises(ValueError, match="augment='strong' is not one of full, mirror, none, photometric"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _faces(root, ids=3, per=3, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    for i in range(ids):
        (root / f"p{i}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            cv2.imwrite(str(root / f"p{i}" / f"{j}.png"), rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return root


def test_crop_cache_rereads_changed_pixels(tmp_path):
    import cv2

    from facecore.training.data import load_crops

    root = _faces(tmp_path / "faces")
    fs = scan_identities(root)
    first = load_crops(fs, 8, tmp_path / "cache", progress=False)
    new = np.full((8, 8, 3), 7, np.uint8)
    cv2.imwrite(str(root / "p1" / "2.png"), new)  # same file list, new pixels
    os.utime(root / "p1" / "2.png", ns=(1, 1_000_000_000))  # a different mtime even on coarse clocks
    again = load_crops(scan_identities(root), 8, tmp_path / "cache", progress=False)
    i = fs.paths.index("p1/2.png")
    assert not np.array_equal(first[i], again[i]) and (again[i] == 7).all()
    others = [k for k in range(len(fs)) if k != i]
    assert np.array_equal(first[others], again[others])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_folder_without_images_says_so(tmp_path):
    (tmp_path / "empty" / "someone").mkdir(parents=True)
    (tmp_path / "empty" / "someone" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no images in"):
        scan_identities(tmp_path / "empty")
    with pytest.raises(ValueError, match=">= 5 images"):
        scan_identities(_faces(tmp_path / "faces"), min_images=5)


def test_training_refuses_a_single_identity(tmp_path):
    from facecore.training.train import TrainConfig, train

    cfg = TrainConfig(data_dir=str(_faces(tmp_path / "one", ids=1, per=4)), min_images=2, lfw_dir=None,
                      cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="at least 2 identities.*found 1"):
        train(cfg, tmp_path / "run", progress=False)


def test_to_tensor_is_the_checkpoint_preprocessing():
    from facecore.networks.models import preprocess

    crops = np.random.default_rng(1).integers(0, 256, (3, 72, 72, 3), dtype=np.uint8)
    ref = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1  # brute force, no resize
    assert torch.equal(to_tensor(crops, 72), ref)
    assert torch.equal(to_tensor(crops, 64), preprocess(crops, 64))
