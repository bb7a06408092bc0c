"""tools/pack_for_gpu.py and tools/continue_on_gpu.sh: distillation data packed for a GPU box that
takes uploads of limited size, and a run continued there within a time budget."""
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facecore.core.checkpoint import read_checkpoint
from facecore.training.data import augment, scan_identities, to_tensor
from facecore.training.distill import scan_unlabelled, teacher_targets
from facecore.training.teachers import create_teacher
from facecore.training.train import TrainConfig, train
from test_teachers import toy  # noqa: F401 (the toy teacher, registered for one test)

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))  # the tools are scripts, not part of the package
from pack_for_gpu import main, pack, slim_state, unpack  # noqa: E402


@pytest.fixture
def roots(data_dir, tmp_path):
    """6 CelebA identities (labelled, their folders) and 12 crops of others in one flat folder."""
    src = sorted((data_dir / "celeba-crops").iterdir(), key=lambda d: -len(list(d.iterdir())))
    lab, unl = tmp_path / "labelled", tmp_path / "unlabelled"
    for d in src[:6]:
        shutil.copytree(d, lab / d.name)
    unl.mkdir()
    for i, f in enumerate(sorted(p for d in src[6:12] for p in sorted(d.iterdir())[:2])):
        shutil.copy(f, unl / f"{i:03d}.jpg")
    return {"labelled": lab, "unlabelled": unl}


def test_pack_unpack_keeps_layout_pixels_and_teacher_targets(toy, roots, tmp_path):
    info = pack(roots, tmp_path / "pack", toy, None, quality=80, part_mib=0.05, workers=1, progress=False)
    parts = sorted((tmp_path / "pack").glob("part-*.npz"))
    assert len(parts) == len(info["parts"]) > 1 and all(p.stat().st_size < 0.06 * 2**20 for p in parts)
    out = unpack(tmp_path / "pack", tmp_path / "there")
    assert sorted(out) == ["labelled", "unlabelled"]
    table = create_teacher("table", path=tmp_path / "pack" / "teacher.npz")
    for name, root in roots.items():
        here, there = scan_unlabelled(root), scan_unlabelled(out[name])
        assert [p.replace(".jpg", ".webp") for p in here.paths] == there.paths  # same layout and order
        for a, b in zip(here.paths[:5], there.paths[:5]):
            assert cv2.PSNR(cv2.imread(str(root / a)), cv2.imread(str(out[name] / b))) > 30
        want = teacher_targets(here, toy, None, progress=False)  # the teacher on the original crops
        got = teacher_targets(there, table, None, progress=False)
        assert np.abs(got - want).max() < 1e-3 and got.shape == (len(here.paths), 12)
    with pytest.raises(ValueError, match="1 of 1 crops are not in the table, e.g. \\['labelled/x.webp'\\]"):
        table.lookup(tmp_path / "labelled", ["x.webp"])
    with pytest.raises(TypeError, match="cannot embed"):
        table.embed(np.zeros((1, 32, 32, 3), np.uint8))
    parts[0].unlink()
    with pytest.raises(ValueError, match="are missing \\(pass every part\\)"):
        unpack(tmp_path / "pack", tmp_path / "again")


def test_distillation_from_a_table_continues_a_slimmed_run(toy, roots, tmp_path):
    base = dict(arch="efficientnet-b0", loss="distill", loss_kwargs={"teacher_dim": 12, "pair_weight": 1.0},
                min_images=2, epochs=1, batch_size=16, max_steps_per_epoch=2, lfw_dir=None, lr=0.05,
                bn_calibration_batches=1, embedding_dim=32, num_threads=1, augment="photometric")
    here = TrainConfig(data_dir=str(roots["labelled"]), unlabelled_dir=str(roots["unlabelled"]), teacher="toy",
                       cache_dir=str(tmp_path / "c1"), **base)
    train(here, tmp_path / "run", progress=False)
    mib = slim_state(tmp_path / "run" / "last.pt", tmp_path / "pack" / "init.pt", mantissa_bits=6)
    assert mib < (tmp_path / "run" / "last.pt").stat().st_size / 2**20 / 2
    pack(roots, tmp_path / "pack", toy, None, workers=1, progress=False)
    out = unpack(tmp_path / "pack", tmp_path / "there")
    there = TrainConfig(data_dir=str(out["labelled"]), unlabelled_dir=str(out["unlabelled"]), teacher="table",
                        teacher_kwargs={"path": str(tmp_path / "pack" / "teacher.npz")}, cache_dir=str(tmp_path / "c2"),
                        init_from=str(tmp_path / "pack" / "init.pt"), **base)
    h = train(there, tmp_path / "run2", progress=False)
    assert np.isfinite(h.train_loss).all() and np.isfinite(h.val_loss).all()
    slim, last = read_checkpoint(tmp_path / "pack" / "init.pt"), read_checkpoint(tmp_path / "run" / "last.pt")
    assert set(slim) == {"meta", "state_dict", "loss_state"} and slim["meta"]["classes"] == last["meta"]["classes"]
    for k, v in last["loss_state"].items():  # the distill map and the class centres travel, 6 mantissa bits
        if v.is_floating_point():
            assert torch.allclose(slim["loss_state"][k].float(), v, rtol=2 ** -6, atol=1e-4), k
    assert len(scan_identities(out["labelled"], 2).classes) == len(last["meta"]["classes"])


def test_batches_computed_on_a_device_equal_the_cpu_path():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    assert torch.equal(to_tensor(crops, 32), to_tensor(crops, 32, device="cpu"))
    x = to_tensor(crops, 40)
    photometric = {"flip": False, "max_shift": 0.0, "max_scale": 0.0, "max_rot_deg": 0.0}
    warped = augment(x, torch.Generator().manual_seed(1), **{**photometric, "max_shift": 1e-9})
    plain = augment(x, torch.Generator().manual_seed(1), **photometric)  # the identity warp skipped
    assert torch.allclose(plain, warped, atol=1e-5) and not torch.allclose(plain, x, atol=1e-3)


def test_continue_on_gpu_script_fits_epochs_to_its_budget_and_returns_pieces(toy, roots, tmp_path):
    """tools/continue_on_gpu.sh end to end on the CPU (DEVICE=cpu): unpack, probe, train,
    the last epoch's state back in pieces that join to a checkpoint."""
    import json
    import os
    import subprocess

    pack(roots, tmp_path / "pack", toy, None, workers=1, progress=False)
    cfg = dict(data_dir=str(tmp_path / "w" / "data" / "labelled"), unlabelled_dir=str(tmp_path / "w" / "data" / "unlabelled"),
               arch="efficientnet-b0", loss="distill", loss_kwargs={"teacher_dim": 12, "pair_weight": 1.0}, teacher="table",
               teacher_kwargs={"path": str(tmp_path / "pack" / "teacher.npz")}, min_images=2, batch_size=16,
               max_steps_per_epoch=2, lfw_dir=None, bn_calibration_batches=1, embedding_dim=32, num_threads=1,
               cache_dir=str(tmp_path / "w" / "cache"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "WORK": str(tmp_path / "w"), "DEVICE": "cpu", "PYTHONPATH": str(root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(TOOLS / "continue_on_gpu.sh"), str(tmp_path / "pack"),
                        str(tmp_path / "cfg.json"), "100", str(tmp_path / "out")], cwd=root, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "a step" in r.stderr and "epochs" in r.stderr  # the probe's step time and the epochs it allows
    pieces = sorted((tmp_path / "out").glob("state.pt.*"))
    assert pieces and (tmp_path / "out" / "history.csv").exists()
    (tmp_path / "state.pt").write_bytes(b"".join(p.read_bytes() for p in pieces))
    blob = read_checkpoint(tmp_path / "state.pt")  # what finalize_run exports and init_from continues
    assert blob["meta"]["arch"] == "efficientnet-b0" and blob["meta"]["config"]["teacher"] == "table"
    assert {"project.weight", "margin.centres"} <= set(blob["loss_state"])


def test_command_line_names_what_is_wrong(tmp_path, capsys):
    assert main(["pack", str(tmp_path / "p"), "labelled"]) == 2
    assert main(["unpack", str(tmp_path / "nothing"), str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "no folder labelled" in err and "no part-*.npz under" in err
