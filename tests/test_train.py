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
