import numpy as np
import pytest
import torch

from facecore.networks.models import (checkpoint_meta, create_model, default_input_size, list_models, load_embedder,
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
    assert blob["meta"]["align_size"] == 112 and "template" not in blob["meta"]  # template(align_size) is derived
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())
    emb = load_embedder(tmp_path / "m.pt")
    crops = np.random.default_rng(0).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
    out = emb.embed(crops)
    assert out.shape == (4, 128) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    from facecore.networks.models import preprocess

    with torch.no_grad():
        ref = m(preprocess(crops, 64)).numpy()
    assert np.abs(out - ref).max() < 0.02  # fp16 weights: close to the float32 model


def test_not_a_checkpoint_is_named(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="x.pt"):
        read_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_compressed_checkpoint_is_lossless_and_smaller(tmp_path):
    from facecore.networks.models import checkpoint_bytes, is_compressed, write_checkpoint

    torch.manual_seed(0)
    m = create_model("efficientnet-b0", embedding_dim=64)
    for _ in range(3):  # trained-looking weights: fp16 values with varied exponents
        m(torch.randn(2, 3, 64, 64))
    save_checkpoint(tmp_path / "fp16.pt", m, checkpoint_meta("efficientnet-b0", 64, 64), half=True)
    blob = torch.load(tmp_path / "fp16.pt", weights_only=True)
    assert is_compressed(tmp_path / "fp16.pt")
    write_checkpoint(tmp_path / "stored.pt", blob, compress=False)
    assert not is_compressed(tmp_path / "stored.pt")
    assert (tmp_path / "fp16.pt").stat().st_size < 0.97 * (tmp_path / "stored.pt").stat().st_size
    again = torch.load(tmp_path / "fp16.pt", weights_only=True)
    assert again["meta"] == blob["meta"]
    assert all(torch.equal(again["state_dict"][k], v) for k, v in blob["state_dict"].items())
    assert checkpoint_bytes(blob, compress=True) == (tmp_path / "fp16.pt").read_bytes()  # deterministic


def test_shipped_models_fit_the_weight_budget():
    """Issue #3: the six reference models together <= 120 MB; issue #14: with the distilled student
    <= 150 MB in all; each an fp16 state dict."""
    import config

    paths = {n: config.checkpoint_path(n) for n in config.params}
    reference = [p for n, p in paths.items() if not n.startswith("distill-")]
    assert len(reference) == 6 and sum(p.stat().st_size for p in reference) <= 120e6
    assert sum(p.stat().st_size for p in paths.values()) <= 150e6
    for p in paths.values():
        sd = torch.load(p, weights_only=True)["state_dict"]
        assert {v.dtype for v in sd.values() if v.is_floating_point()} == {torch.float16}, p


@pytest.mark.parametrize("bits", [10, 9, 8, 5])
def test_round_mantissa_matches_float_rounding(bits):
    from facecore.networks.models import round_mantissa

    x = torch.cat([torch.randn(20000) * 0.05, torch.tensor([0.0, -0.0, 1.0, -1.5, 2047.0, 1e-3, -3e-2])]).half()
    y = round_mantissa(x, bits)
    assert y.dtype == torch.float16
    f = x.double()
    normal = f.abs() >= 2.0 ** -14
    step = 2.0 ** (torch.floor(torch.log2(f.abs().clamp_min(2.0 ** -14))) - bits)
    ref = torch.round(f / step) * step  # round half to even, like the bit arithmetic
    assert torch.equal(y.double()[normal], ref[normal])
    assert torch.equal(round_mantissa(y, bits), y)  # idempotent
    if bits < 10:
        low = y.view(torch.int16) & ((1 << (10 - bits)) - 1)
        assert int(low[normal].abs().max()) == 0
    edge = torch.tensor([65504.0, -65504.0, float("inf"), float("-inf"), float("nan")]).half()
    kept = round_mantissa(edge, bits)
    assert torch.isfinite(kept[:2]).all() and torch.equal(kept[2:4], edge[2:4]) and kept[4].isnan()
    with pytest.raises(ValueError, match="1..10"):
        round_mantissa(x, 11)
    with pytest.raises(TypeError, match="fp16"):
        round_mantissa(x.float(), 9)


def test_architecture_not_matching_the_weights_is_one_line(tmp_path):
    m = create_model("efficientnet-b0", embedding_dim=32)
    meta = checkpoint_meta("efficientnet-b1", 32, 64)  # meta names another backbone than the weights
    save_checkpoint(tmp_path / "wrong.pt", m, meta)
    with pytest.raises(ValueError, match=r"wrong\.pt: its weights do not fit") as e:
        load_embedder(tmp_path / "wrong.pt")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("half", [False, True])
def test_a_flipped_byte_is_caught(tmp_path, half):
    m = create_model("efficientnet-b0", embedding_dim=32)
    path = tmp_path / "m.pt"
    save_checkpoint(path, m, checkpoint_meta("efficientnet-b0", 32, 64), half=half)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.pt is corrupt"):
        read_checkpoint(path)
    with pytest.raises(ValueError, match=r"m\.pt is corrupt"):
        load_embedder(path)


def test_flip_embedding_is_the_sum_of_a_crops_and_its_mirrors_forward():
    """One batched forward of crops and mirrors equals two separate forwards (the reference)."""
    import torch.nn.functional as F

    from facecore.networks.models import Embedder
    from facecore.core.preprocessing import meta_to_tensor

    torch.manual_seed(0)
    model = create_model("inceptionresnetv1", embedding_dim=32).eval()
    emb = Embedder(model, checkpoint_meta("inceptionresnetv1", 32, 96))
    crops = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    with torch.no_grad():
        x = meta_to_tensor(crops, emb.meta)
        ref = F.normalize(model(x) + model(torch.flip(x, dims=[3])), dim=1).numpy()
    np.testing.assert_allclose(emb.embed(crops, flip=True), ref, atol=1e-5)
    assert np.abs(emb.embed(crops, flip=False) - ref).max() > 1e-4  # the mirror does count, 10x the tolerance


def test_bf16_embeddings_of_the_default_model_match_float32_on_real_faces(lfw_dir):
    """realtime.py embeds frames in bfloat16 where the CPU has it natively: the default shipped model's
    embeddings of real aligned faces stay within cosine 0.999 of float32 ones."""
    import config
    from facecore.detection.detectors import create_detector
    from facecore.detection.faces import detect_align
    from facecore.core.files import load_rgb
    from facecore.recognition.recognize import embed_bf16
    from facecore.core.runtime import autocast, native_bf16
    from facecore.core.zoo import shipped_models

    assert embed_bf16(None, "cuda") is False and embed_bf16(True, "cpu") is True
    assert embed_bf16(False, "cpu") is False and embed_bf16(None, "cpu") is native_bf16()
    emb = load_embedder(shipped_models()[config.DEFAULT_MODEL][0])
    paths = sorted(lfw_dir.glob("A*/*.jpg"))[:6]
    found = detect_align([load_rgb(p).rgb for p in paths], create_detector("mtcnn"), emb.align_size)
    crops = np.stack([faces[0].crop for faces in found if faces])
    assert len(crops) >= 5
    full = emb.embed(crops, flip=True)
    with autocast("cpu", True):
        half = emb.embed(crops, flip=True)
    assert half.dtype == np.float32
    cos = (full * half).sum(axis=1)
    assert cos.min() > 0.999, cos
