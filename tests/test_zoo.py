"""Shipped models: every file of the zoo table matches its recorded SHA-256; a changed one is refused on
load; exporting over one records its new hash; files outside the checkout are found where documented."""
import shutil
from pathlib import Path

import pytest
import torch

import config
from facecore.core import zoo, zoo_table
from facecore.core import zoo
from facecore.networks.models import checkpoint_meta, create_model, load_embedder, save_checkpoint
from facecore.networks.models import checkpoint_meta, create_model, load_embedder, save_checkpoint


def test_every_shipped_file_matches_its_recorded_hash():
    assert set(zoo_table.sha256) == set(zoo_table.params)
    assert config.params is zoo_table.params and config.DEFAULT_MODEL == zoo_table.DEFAULT_MODEL  # re-exported
    for name, (path, digest) in zoo.shipped_models().items():
        assert path.is_file(), f"{name}: {path} missing (git lfs pull?)"
        assert zoo.sha256_file(path) == digest, f"{name}: {path} differs from zoo_table.sha256 - re-record or restore it"
    default = zoo.checkpoint_path(zoo_table.DEFAULT_MODEL)  # package data: inside the package folder
    assert default.parent == Path(zoo.__file__).parents[1] / "weights"


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert zoo.sha256_file(tmp_path / "f") == hashlib.sha256(b"abc" * 1000).hexdigest()


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A shipped model "tiny" at a temporary path, recorded in a copy of the zoo table."""
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, create_model("efficientnet-b0", embedding_dim=32), checkpoint_meta("efficientnet-b0", 32, 64),
                    half=True)
    cfg = tmp_path / "zoo_table.py"
    shutil.copyfile(zoo.TABLE_FILE, cfg)
    monkeypatch.setattr(zoo_table, "params", {**zoo_table.params, "tiny": str(path)})
    monkeypatch.setattr(zoo_table, "sha256", {**zoo_table.sha256, "tiny": zoo.sha256_file(path)})
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
    first = next(iter(zoo_table.params))
    other = zoo.shipped_models()[first][0]
    fake = cfg.read_text().replace(zoo_table.sha256[first], "0" * 64)
    cfg.write_text(fake)
    zoo.record_hash(other, config_file=cfg)  # an existing line is rewritten in place
    assert cfg.read_text() == fake.replace("0" * 64, zoo.sha256_file(other))


def test_finalize_over_a_shipped_model_records_its_hash(fake_zoo, monkeypatch, tmp_path):
    from facecore.training.shipping import finalize_run

    path, cfg = fake_zoo
    monkeypatch.setattr(zoo, "TABLE_FILE", cfg)  # record into the copy of the table
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", create_model("efficientnet-b0", embedding_dim=32),
                    checkpoint_meta("efficientnet-b0", 32, 64, metrics={"epoch": 1}))
    m = finalize_run(run, "best.pt", str(path), lfw_dir=None)
    assert m["sha256"] == zoo.sha256_file(path)
    assert f'"tiny": "{m["sha256"]}"' in cfg.read_text()


def test_models_outside_the_checkout_are_found_where_documented(tmp_path, monkeypatch):
    """A shipped model missing from the checkout is looked for in $FACECORE_MODELS (its file name, or its
    path in a checkout) and the per-user folder; when absent the error lists every place."""
    monkeypatch.setattr(zoo_table, "params", {**zoo_table.params, "elsewhere": "notebooks/x/elsewhere.pt"})
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("FACECORE_MODELS", raising=False)
    with pytest.raises(zoo.ModelNotFoundError) as e:
        zoo.checkpoint_path("elsewhere")
    msg = str(e.value)
    assert "elsewhere.pt not found" in msg and str(zoo.PROJECT_ROOT / "notebooks/x/elsewhere.pt") in msg
    assert str(tmp_path / "data" / "facecore" / "models") in msg and "FACECORE_MODELS is unset" in msg
    user = tmp_path / "data" / "facecore" / "models" / "elsewhere.pt"
    user.parent.mkdir(parents=True)
    user.write_bytes(b"x")
    assert zoo.checkpoint_path("elsewhere") == user and zoo.shipped_name(user) == "elsewhere"
    flat, tree = tmp_path / "flat" / "elsewhere.pt", tmp_path / "tree" / "notebooks" / "x" / "elsewhere.pt"
    for f in (flat, tree):
        f.parent.mkdir(parents=True)
        f.write_bytes(b"y")
    monkeypatch.setenv("FACECORE_MODELS", str(tmp_path / "flat"))  # before the per-user folder
    assert zoo.checkpoint_path("elsewhere") == flat
    monkeypatch.setenv("FACECORE_MODELS", str(tmp_path / "tree"))  # a checkout: the same relative path
    assert zoo.checkpoint_path("elsewhere") == tree
    with pytest.raises(KeyError, match="unknown model name 'nope'"):
        zoo.checkpoint_path("nope")
