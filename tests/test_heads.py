import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facecore.core.checkpoint import export_for_shipping, read_checkpoint, save_checkpoint, set_thresholds
from facecore.core.preprocessing import meta_to_tensor
from facecore.networks.heads import PREFIX, HeadedModel, create_head, fit_head, head_names, split_state
from facecore.networks.losses import create_loss
from facecore.networks.models import checkpoint_meta, create_model, load_embedder
from facecore.recognition.recognizer import ModelChoiceError, load_model
from facecore.training.data import load_crops
from facecore.training.distill import add_head, scan_unlabelled
from facecore.training.warmstart import warm_start
from test_teachers import toy  # noqa: F401 (the toy teacher, registered for one test)
from test_transport import roots  # noqa: F401 (6 labelled identities and 12 unlabelled crops)


def test_registry_names_the_valid_heads():
    assert head_names() == ["linear", "mlp"]
    assert create_head("mlp", 8, 3, hidden=5)[0].out_features == 5
    with pytest.raises(ValueError, match="unknown head 'deep'; valid names: linear, mlp"):
        create_head("deep", 8, 3)


def _cos(head, x, t):
    with torch.no_grad():
        return float((F.normalize(head(torch.as_tensor(x)), dim=1).numpy() * t).sum(1).mean())


def test_fit_head_learns_maps_to_unit_targets_from_unscaled_inputs():
    """Inputs off-centre with scales 0.1 and 10 (the standardisation is folded into the first layer)."""
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, [0.1] * 4 + [10.0] * 4, size=(3000, 8)).astype(np.float32)
    z = x @ (rng.normal(size=(8, 6)) / np.r_[[0.1] * 4, [10.0] * 4][:, None])
    z -= z.mean(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    lin, bent = unit(z + 0.5), unit(np.abs(z))  # |z|: no linear map can follow it
    lin[:50] = np.nan  # rows without a teacher target are left out, not learnt
    fit = dict(hidden=64, epochs=20, batch_size=64, progress=False)
    assert _cos(fit_head(x, lin, "linear", **fit), x[50:], lin[50:]) > 0.99
    assert (_cos(fit_head(x, bent, "mlp", **fit), x, bent) - _cos(fit_head(x, bent, "linear", **fit), x, bent)) > 0.02
    with pytest.raises(ValueError, match="0 usable rows of 3"):
        fit_head(x[:3], np.full((3, 6), np.nan, np.float32), progress=False)


def test_headed_checkpoint_loads_exports_and_warm_starts(tmp_path):
    torch.manual_seed(0)
    body = create_model("efficientnet-b0", embedding_dim=16).eval()
    head = create_head("linear", 16, 5)
    path = tmp_path / "student.pt"
    save_checkpoint(path, body, checkpoint_meta("efficientnet-b0", 16, 32))
    blob = read_checkpoint(path)
    blob["meta"].update(embedding_dim=5, head={"kind": "linear", "in_dim": 16, "out_dim": 5, "hidden": 0})
    blob["state_dict"].update({PREFIX + k: v for k, v in head.state_dict().items()})
    torch.save(blob, path)
    export_for_shipping(path, tmp_path / "shipped.pt")
    emb = load_embedder(tmp_path / "shipped.pt")
    assert isinstance(emb.model, HeadedModel)
    crops = np.random.default_rng(1).integers(0, 255, (4, 32, 32, 3), np.uint8)
    e = emb.embed(crops, flip=True)
    assert e.shape == (4, 5) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    with torch.no_grad():  # the head maps the backbone's unit embedding (weights as shipped: fp16)
        one = F.normalize(head.half().float()(body.half().float()(meta_to_tensor(crops, emb.meta))), dim=1)
    assert np.abs(emb.embed(crops) - one.numpy()).max() < 1e-3
    bare = emb.without_head()  # realtime.py's default: the backbone's own embedding and thresholds
    assert bare.embed(crops).shape == (4, 16) and not {"head", "thresholds_by_fpr"} & set(bare.meta)
    set_thresholds(tmp_path / "shipped.pt", 0.9, 0.01, {"0.01": 0.9},
                   backbone={"threshold": 0.3, "threshold_fpr": 0.01, "thresholds_by_fpr": {"0.01": 0.3}})
    assert load_model(checkpoint=tmp_path / "shipped.pt")[1] == 0.3
    assert load_model(checkpoint=tmp_path / "shipped.pt", head=True)[1] == 0.9
    assert load_model(checkpoint=tmp_path / "shipped.pt")[0].embed(crops).shape == (4, 16)
    save_checkpoint(tmp_path / "plain.pt", body, checkpoint_meta("efficientnet-b0", 16, 32))
    with pytest.raises(ModelChoiceError, match=r"head \(--head\): plain.pt has no teacher-space head.*drop --head"):
        load_model(checkpoint=tmp_path / "plain.pt", head=True)
    fresh = create_model("efficientnet-b0", embedding_dim=16)
    loss = create_loss("arcface", embedding_dim=16, num_classes=3)
    assert "backbone from" in warm_start(fresh, loss, tmp_path / "shipped.pt", "efficientnet-b0", 16, ["a", "b", "c"])
    backbone, head_sd = split_state(read_checkpoint(tmp_path / "shipped.pt")["state_dict"])
    assert set(head_sd) == {"weight", "bias"}  # the backbone's own "head.*" layers stay with the backbone
    assert torch.equal(fresh.state_dict()["head.4.weight"].half(), backbone["head.4.weight"])
    with pytest.raises(ValueError, match="with 16-d embeddings, but this run trains a efficientnet-b0 with 5-d"):
        warm_start(create_model("efficientnet-b0", embedding_dim=5), loss, tmp_path / "shipped.pt",
                   "efficientnet-b0", 5, [])


def test_add_head_maps_a_student_into_the_teachers_space(toy, roots, tmp_path):
    torch.manual_seed(0)
    student = create_model("efficientnet-b0", embedding_dim=16).eval()
    src = tmp_path / "best.pt"
    save_checkpoint(src, student, checkpoint_meta("efficientnet-b0", 16, 32))
    info = add_head(src, tmp_path / "head.pt", roots["labelled"], toy, tmp_path / "cache", roots["unlabelled"],
                    min_images=2, epochs=3, mantissa_bits=6, progress=False)
    assert info["kind"] == "linear" and info["in_dim"] == 16 and info["out_dim"] == 12 and info["rows"] > 20
    assert -1 <= info["val_cos"] <= 1
    meta = read_checkpoint(tmp_path / "head.pt")["meta"]
    assert meta["embedding_dim"] == 12 and meta["head"]["teacher"] == "toy"
    emb = load_embedder(tmp_path / "head.pt")
    fs = scan_unlabelled(roots["unlabelled"])
    e = emb.embed(load_crops(fs, 32, progress=False))
    assert e.shape == (len(fs.paths), 12) and np.isfinite(e).all()
    with pytest.raises(ValueError, match="already has a linear head; start from the run's best.pt"):
        add_head(tmp_path / "head.pt", tmp_path / "again.pt", roots["labelled"], toy, tmp_path / "cache")
