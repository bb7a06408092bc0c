import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from facecore.networks.models import read_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _cfg(data_dir, tmp_path, **kw):
    cfg = {"data_dir": str(data_dir / "celeba-crops"), "arch": "efficientnet-b0", "loss": "arcface",
           "max_identities": 6, "min_images": 10, "epochs": 3, "batch_size": 16, "max_steps_per_epoch": 4,
           "lfw_dir": None, "cache_dir": str(tmp_path / "crops"), "lr": 0.05, "bn_calibration_batches": 2,
           "embedding_dim": 64, "num_threads": 1}
    cfg.update(kw)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _train_cmd(cfg, out):
    return [sys.executable, "-m", "facecore.training.train", "--config", str(cfg), "--out", str(out), "--quiet"]


def test_kill_9_during_training_resumes_from_last_epoch(data_dir, tmp_path):
    cfg = _cfg(data_dir, tmp_path, epochs=4)
    out = tmp_path / "run"
    p = subprocess.Popen(_train_cmd(cfg, out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 400
    while time.time() < deadline and not (out / "history.csv").exists():
        time.sleep(0.2)
    assert (out / "history.csv").exists(), "the first epoch did not finish in time"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    done = len(pd.read_csv(out / "history.csv"))
    assert 1 <= done < 4
    for name in ("last.pt", "best.pt"):
        read_checkpoint(out / name)  # complete files, never half-written
    r = subprocess.run(_train_cmd(cfg, out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resuming {out} after epoch {done}" in r.stdout
    h = pd.read_csv(out / "history.csv")
    assert h.epoch.tolist() == [1, 2, 3, 4]
    assert read_checkpoint(out / "last.pt")["meta"]["metrics"]["epoch"] == 4


def test_torchrun_two_processes_match_one(data_dir, tmp_path):
    cfg = _cfg(data_dir, tmp_path, epochs=2)
    one = subprocess.run(_train_cmd(cfg, tmp_path / "one"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                          "-m", "facecore.training.train", "--config", str(cfg), "--out", str(tmp_path / "two"), "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    h1, h2 = pd.read_csv(tmp_path / "one" / "history.csv"), pd.read_csv(tmp_path / "two" / "history.csv")
    assert h1.samples.tolist() == h2.samples.tolist() == [64, 64]
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pt")) == ["best.pt", "last.pt"]


def test_changed_config_is_refused(data_dir, tmp_path):
    from facecore.training.train import TrainConfig, train

    out = tmp_path / "r"
    base = json.loads(_cfg(data_dir, tmp_path, epochs=1, max_steps_per_epoch=1).read_text())
    train(TrainConfig(**base), out, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train(TrainConfig(**{**base, "lr": 0.5}), out, progress=False)


class _Spoiled:
    """A tiny embedder that turns NaN after ``after`` forward passes in training mode: in its output
    (``where="loss"``) or in a weight the loss does not see (``where="weights"``)."""

    @staticmethod
    def make(after: int, where: str):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            min_input_size = 8

            def __init__(self, embedding_dim=8):
                super().__init__()
                self.conv, self.fc = nn.Conv2d(3, 4, 3, stride=2), nn.Linear(4, embedding_dim)
                self.unused, self.calls = nn.Parameter(torch.zeros(2)), 0

            def forward(self, x):
                self.calls += self.training
                e = self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))
                if self.calls > after and where == "loss":
                    e = e * float("nan")
                if self.calls > after and where == "weights":
                    with torch.no_grad():
                        self.unused.fill_(float("inf"))
                return F.normalize(e, dim=1)

        return lambda embedding_dim=8, **kw: Net(embedding_dim)


@pytest.mark.parametrize("where", ["loss", "weights"])
def test_a_diverging_run_stops_and_keeps_the_last_finite_epoch(tmp_path, monkeypatch, where):
    """2 steps an epoch: epoch 1 is finite, epoch 2 turns NaN; last.pt and best.pt keep epoch 1."""
    import cv2
    import numpy as np

    from facecore.networks import models
    from facecore.training.train import DivergedError, TrainConfig, train

    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "faces" / f"id{i}").mkdir(parents=True)
        for j in range(6):
            cv2.imwrite(str(tmp_path / "faces" / f"id{i}" / f"{j}.png"), rng.integers(0, 255, (16, 16, 3), np.uint8))
    monkeypatch.setitem(models._REGISTRY, "spoiled-test", _Spoiled.make(after=2, where=where))
    cfg = TrainConfig(data_dir=str(tmp_path / "faces"), arch="spoiled-test", loss="ce", embedding_dim=8, input_size=16,
                      min_images=2, epochs=3, batch_size=6, lr=0.05, lfw_dir=None, cache_dir=str(tmp_path / "cache"),
                      bn_calibration_batches=0, num_threads=1)
    run = tmp_path / "run"
    with pytest.raises(DivergedError, match=f"^epoch 2: .*training stopped \\({run / 'last.pt'} keeps epoch 1\\)"):
        train(cfg, run, progress=False)
    last = read_checkpoint(run / "last.pt")  # reads: finite weights (read_checkpoint refuses others)
    assert len(json.loads(last["history_json"])) == 1 and read_checkpoint(run / "best.pt")
    assert len(pd.read_csv(run / "history.csv")) == 1
