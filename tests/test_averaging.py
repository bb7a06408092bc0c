import json

import cv2
import numpy as np
import pytest
import torch

from facecore.core.checkpoint import read_checkpoint
from facecore.networks.models import checkpoint_meta, create_model, load_embedder, save_checkpoint
from facecore.training.averaging import average_checkpoints, average_state_dicts, bn_batches, main

ARCH = "efficientnet-b0"


def _checkpoint(path, seed, arch=ARCH, dim=32):
    torch.manual_seed(seed)
    model = create_model(arch, embedding_dim=dim)
    save_checkpoint(path, model, checkpoint_meta(arch, dim, 64, ["a", "b"], config={"lr": 0.1}))
    return model.state_dict()


@pytest.fixture
def two(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    return [a, b], [_checkpoint(a, 1), _checkpoint(b, 2)]


@pytest.fixture
def aligned(tmp_path):
    rng = np.random.default_rng(0)
    for who in ("p1", "p2"):
        (tmp_path / "aligned" / who).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(tmp_path / "aligned" / who / f"{i}.png"), rng.integers(0, 256, (112, 112, 3), np.uint8))
    return tmp_path / "aligned"


def test_weighted_mean_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    sds = [{"w": torch.randn(3, 4, generator=g), "n": torch.tensor(i + 5)} for i in range(3)]
    out = average_state_dicts(sds, [1, 2, 1])
    ref = (sds[0]["w"] + 2 * sds[1]["w"] + sds[2]["w"]) / 4
    assert torch.allclose(out["w"], ref, atol=1e-6)
    assert out["n"].item() == 5  # integer counters come from the first
    assert torch.allclose(average_state_dicts(sds)["w"], sum(s["w"] for s in sds) / 3, atol=1e-6)


@pytest.mark.parametrize("weights", [[1, -1], [0, 0], [1], [1, float("nan")]])
def test_bad_weights_are_refused(weights):
    sds = [{"w": torch.zeros(2)}, {"w": torch.ones(2)}]
    with pytest.raises(ValueError, match="weights must be 2 non-negative"):
        average_state_dicts(sds, weights)


def test_mismatched_state_dicts_are_refused():
    with pytest.raises(ValueError, match="other keys"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match=r"w has shape \(3,\)"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])


def test_average_checkpoint_loads_and_holds_the_mean(two, tmp_path):
    paths, sds = two
    out = tmp_path / "avg.pt"
    meta = average_checkpoints(paths, out)
    assert meta["config"]["averaged_from"] == [str(p) for p in paths] and meta["config"]["lr"] == 0.1
    got = read_checkpoint(out)["state_dict"]
    k = "head.3.weight"
    assert torch.allclose(got[k], (sds[0][k] + sds[1][k]) / 2, atol=1e-6)
    emb = load_embedder(out).embed(np.zeros((2, 112, 112, 3), np.uint8))
    assert emb.shape == (2, 32) and np.all(np.isfinite(emb))


def test_batchnorm_statistics_are_recomputed_on_the_crops(two, tmp_path, aligned):
    paths, sds = two
    out = tmp_path / "avg.pt"
    average_checkpoints(paths, out, bn_data=aligned, bn_images=8)
    got = read_checkpoint(out)["state_dict"]
    # reference: the stem's batch statistics under the averaged weights, over the same 8 crops
    model = create_model(ARCH, embedding_dim=32)
    model.load_state_dict(average_state_dicts(sds))
    x = torch.cat(bn_batches(aligned, read_checkpoint(out)["meta"], images=8))
    with torch.no_grad():
        stem = model.trunk._conv_stem(x)
    ref = stem.mean(dim=(0, 2, 3))
    assert torch.allclose(got["trunk._bn0.running_mean"], ref, atol=1e-4)
    assert not torch.allclose(got["trunk._bn0.running_mean"], (sds[0]["trunk._bn0.running_mean"]
                                                               + sds[1]["trunk._bn0.running_mean"]) / 2)


def test_other_networks_are_refused_naming_the_file(two, tmp_path):
    paths, _ = two
    other = tmp_path / "other.pt"
    _checkpoint(other, 3, dim=16)
    with pytest.raises(ValueError, match=r"other\.pt: meta 'embedding_dim' = 16"):
        average_checkpoints([paths[0], other], tmp_path / "avg.pt")
    assert not (tmp_path / "avg.pt").exists()


def test_cli_exports_and_reports_errors(two, tmp_path, capsys):
    paths, _ = two
    out, export, metrics = tmp_path / "run" / "avg.pt", tmp_path / "ship.pt", tmp_path / "m.json"
    out.parent.mkdir()
    assert main([str(out), *map(str, paths), "--export", str(export), "--mantissa_bits", "6",
                 "--lfw_dir", str(tmp_path / "no-lfw"), "--metrics", str(metrics)]) == 0
    assert read_checkpoint(export)["state_dict"]["head.3.weight"].dtype == torch.float16
    assert json.loads(metrics.read_text())["mantissa_bits"] == 6
    assert main([str(out), str(paths[0])]) == 2
    assert "at least two checkpoints" in capsys.readouterr().err
    assert main([str(out), *map(str, paths), "--weights", "1,2,3"]) == 2
    assert "3 values for 2 checkpoints" in capsys.readouterr().err
