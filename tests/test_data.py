import numpy as np
import pytest

from facecore.data import PKSampler, augment, scan_identities, shuffled_batches, split_per_identity, to_tensor


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
