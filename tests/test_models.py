import numpy as np
import pytest
import torch

from facecore.models import (checkpoint_meta, create_model, default_input_size, list_models, load_embedder,
                             read_checkpoint, save_checkpoint)


@pytest.mark.parametrize("name", list_models())
def test_registered_models_give_unit_embeddings(name):
    torch.manual_seed(0)
    m = create_model(name, embedding_dim=64).eval()
    s = default_input_size(name)
    with torch.no_grad():
        e = m(torch.randn(3, 3, s, s))
    assert e.shape == (3, 64)
    np.testing.assert_allclose(e.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="efficientnet-b0.*inceptionresnetv1"):
        create_model("resnet50")


def test_efficientnet_batchnorm_momentum_is_pytorch_default():
    m = create_model("efficientnet-b0")
    moms = {mod.momentum for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)}
    assert all(abs(x - 0.1) < 1e-9 for x in moms)


def test_checkpoint_roundtrip_fp16(tmp_path):
    torch.manual_seed(0)
    m = create_model("efficientnet-b0", embedding_dim=128).eval()
    meta = checkpoint_meta("efficientnet-b0", 128, 64, classes=["a", "b"], config={"lr": 0.1}, metrics={"lfw_acc": 0.5})
    save_checkpoint(tmp_path / "m.pt", m, meta, half=True)
    blob = torch.load(tmp_path / "m.pt", weights_only=True)  # loads without pickle of code
    assert blob["meta"]["template"][0] == pytest.approx([38.2946, 51.6963])
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())
    emb = load_embedder(tmp_path / "m.pt")
    crops = np.random.default_rng(0).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
    out = emb.embed(crops)
    assert out.shape == (4, 128) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    from facecore.models import preprocess

    with torch.no_grad():
        ref = m(preprocess(crops, 64)).numpy()
    assert np.abs(out - ref).max() < 0.02  # fp16 weights: close to the float32 model


def test_not_a_checkpoint_is_named(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="x.pt"):
        read_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")
