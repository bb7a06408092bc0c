"""Resume after kill -9: a run interrupted at random points equals an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facecore.core.checkpoint import read_checkpoint, write_checkpoint

ROOT = Path(__file__).resolve().parent.parent

# A tiny network with dropout: its masks draw from torch's global generator, which a resume must restore.
SCRIPT = '''
import json, sys
import torch.nn as nn, torch.nn.functional as F
from facecore.networks.models import register_model

class Tiny(nn.Module):
    def __init__(self, embedding_dim=16):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8)
        self.drop, self.fc = nn.Dropout(0.3), nn.Linear(8, embedding_dim)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1).flatten(1)
        return F.normalize(self.fc(self.drop(x)), dim=1)

register_model("tiny-test")(lambda embedding_dim=16, **kw: Tiny(embedding_dim))
from facecore.training.train import TrainConfig, train
cfg = TrainConfig(**json.loads(open(sys.argv[1]).read()))
print("ready", flush=True)
train(cfg, sys.argv[2], progress=False)
print("finished", flush=True)
'''


def make_faces(root: Path, identities: int = 6, images: int = 8, size: int = 16, seed: int = 0) -> Path:
    """Random-noise "faces", ``identities`` folders of ``images`` PNGs each."""
    import cv2

    rng = np.random.default_rng(seed)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (size, size, 3))
        for j in range(images):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"id{i}" / f"{j}.png"), img)
    return root


def _setup(tmp_path, loss):
    data = make_faces(tmp_path / "faces")
    cfg = {"data_dir": str(data), "arch": "tiny-test", "loss": loss, "embedding_dim": 16, "input_size": 16,
           "min_images": 2, "epochs": 7, "batch_size": 8, "p_identities": 3, "k_images": 2, "lr": 0.05,
           "lfw_dir": None, "cache_dir": str(tmp_path / "cache"), "bn_calibration_batches": 2, "num_threads": 1,
           "loss_kwargs": {"margin_warmup_steps": 5} if loss == "arcface" else {}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "run.py").write_text(SCRIPT)
    return [sys.executable, str(tmp_path / "run.py"), str(tmp_path / "cfg.json")]


def _start(cmd, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([*cmd, str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    return p


def _epochs_done(run: Path) -> int:
    try:
        return len((run / "history.csv").read_text().strip().splitlines()) - 1
    except FileNotFoundError:
        return 0


def _state(run):
    blob = read_checkpoint(run / "last.pt")
    return {**{f"model.{k}": v for k, v in blob["state_dict"].items()},
            **{f"loss.{k}": v for k, v in blob["loss_state"].items()}}, json.loads(blob["history_json"])


@pytest.mark.parametrize("loss", ["arcface", "triplet"])
def test_kill_9_at_random_points_then_resume_equals_uninterrupted(tmp_path, loss):
    cmd = _setup(tmp_path, loss)
    t0 = time.time()
    p = _start(cmd, tmp_path / "straight")
    rest = p.communicate(timeout=120)[0]
    assert p.returncode == 0, rest
    duration = time.time() - t0
    assert read_checkpoint(tmp_path / "straight" / "best.pt")["meta"]["align_size"] == 16  # the crops' side
    rng = np.random.default_rng(1)
    epoch_s = duration / 7
    kills = 0
    for target in range(5):  # 5 kills: at a random point of each of epochs 1..5 (epochs 6-7 then finish)
        p = _start(cmd, tmp_path / "killed")
        while p.poll() is None and _epochs_done(tmp_path / "killed") < target:
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0, epoch_s)))  # a random point of the next epoch (or its checkpointing)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.communicate()
    p = _start(cmd, tmp_path / "killed")
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 0 and kills == 5 and "resuming" in out, (kills, out)
    want, h_want = _state(tmp_path / "straight")
    got, h_got = _state(tmp_path / "killed")
    assert [r["epoch"] for r in h_got] == list(range(1, 8))
    assert [r["train_loss"] for r in h_got] == pytest.approx([r["train_loss"] for r in h_want], abs=1e-6)
    assert sorted(got) == sorted(want)
    for k in want:
        torch.testing.assert_close(got[k].float(), want[k].float(), rtol=0, atol=1e-6, msg=k)


def test_last_pt_without_rng_state_still_resumes(tmp_path, capsys):
    """Runs written before the generators were saved (no "rng"/"scaler" in last.pt) resume."""
    from facecore.networks.models import register_model
    from facecore.training.train import TrainConfig, train

    exec(SCRIPT.split("from facecore.training.train")[0], {})  # registers tiny-test in this process
    assert "tiny-test" in __import__("facecore.networks.models", fromlist=["list_models"]).list_models()
    cmd = _setup(tmp_path, "arcface")
    cfg = TrainConfig(**{**json.loads(Path(cmd[2]).read_text()), "epochs": 2})
    run = tmp_path / "old"
    train(TrainConfig(**{**cfg.__dict__, "epochs": 2}), run, progress=False)
    blob = read_checkpoint(run / "last.pt")
    hist = json.loads(blob["history_json"])[:1]
    old = {k: v for k, v in blob.items() if k not in ("rng", "scaler")}
    old["history_json"] = json.dumps(hist)
    write_checkpoint(run / "last.pt", old)
    h = train(cfg, run, progress=False)
    assert h.epoch.tolist() == [1, 2]
    assert "holds no random-generator state" in capsys.readouterr().out
    del register_model
