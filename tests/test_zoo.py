"""Shipped models: every file in config.py matches its recorded SHA-256; a changed one is refused on
load; exporting over one records its new hash."""
import shutil

import pytest
import torch

import config
from facecore.core import zoo
from facecore.networks.models import checkpoint_meta, create_model, load_embedder, save_checkpoint


def test_every_shipped_file_matches_its_recorded_hash():
    assert set(config.sha256) == set(config.params)
    for name, (path, digest) in zoo.shipped_models().items():
        assert path.is_file(), f"{name}: {path} missing (git lfs pull?)"
        assert zoo.sha256_file(path) == digest, f"{name}: {path} differs from config.sha256 - re-record or restore it"


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert zoo.sha256_file(tmp_path / "f") == hashlib.sha256(b"abc" * 1000).hexdigest()


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A shipped model "tiny" at a temporary path, recorded in a copy of config.py."""
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, create_model("efficientnet-b0", embedding_dim=32), checkpoint_meta("efficientnet-b0", 32, 64),
                    half=True)
    cfg = tmp_path / "config.py"
    shutil.copyfile(config.__file__, cfg)
    monkeypatch.setattr(config, "params", {**config.params, "tiny": str(path)})
    monkeypatch.setattr(config, "sha256", {**config.sha256, "tiny": zoo.sha256_file(path)})
    return path, cfg


def test_changed_shipped_model_is_refused_naming_the_file(fake_zoo):
    path, _ = fake_zoo
    load_embedder(path)  # intact: loads
    blob = torch.load(path, weights_only=True)
    blob["meta"]["metrics"]["tampered"] = 1
    torch.save(blob, path)  # a valid checkpoint, but not the one shipped
    with pytest.raises(ValueError, match=r"tiny\.pt \(shipped model 'tiny'\).*git checkout"):
        load_embedder(path)
    zoo.verify_shipped(path.parent / "elsewhere.pt")  # not shipped: nothing to check


def test_record_hash_rewrites_config(fake_zoo, capsys):
    path, cfg = fake_zoo
    text = cfg.read_text()
    name, digest = zoo.record_hash(path, config_file=cfg)  # "tiny" has no line yet: one is added
    assert name == "tiny" and f'    "tiny": "{digest}",' in cfg.read_text()
    assert "sha256['tiny']" in capsys.readouterr().out
    assert cfg.read_text().replace(f'    "tiny": "{digest}",\n', "") == text
    first = next(iter(config.params))
    other = zoo.shipped_models()[first][0]
    fake = cfg.read_text().replace(config.sha256[first], "0" * 64)
    cfg.write_text(fake)
    zoo.record_hash(other, config_file=cfg)  # an existing line is rewritten in place
    assert cfg.read_text() == fake.replace("0" * 64, zoo.sha256_file(other))


def test_finalize_over_a_shipped_model_records_its_hash(fake_zoo, monkeypatch, tmp_path):
    from facecore.training.shipping import finalize_run

    path, cfg = fake_zoo
    monkeypatch.setattr(zoo, "PROJECT_ROOT", tmp_path)  # record into the copy of config.py
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", create_model("efficientnet-b0", embedding_dim=32),
                    checkpoint_meta("efficientnet-b0", 32, 64, metrics={"epoch": 1}))
    m = finalize_run(run, "best.pt", str(path), lfw_dir=None)
    assert m["sha256"] == zoo.sha256_file(path)
    assert f'"tiny": "{m["sha256"]}"' in cfg.read_text()
