import torch

from facecore.experiment import finalize_run
from facecore.models import checkpoint_meta, create_model, is_compressed, read_checkpoint, save_checkpoint


def test_finalize_exports_deflated_fp16_with_the_mantissa_asked(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    model = create_model("efficientnet-b0", embedding_dim=32)
    save_checkpoint(run / "best.pt", model, checkpoint_meta("efficientnet-b0", 32, 64, classes=["a", "b"],
                                                            metrics={"epoch": 3, "val_acc": 0.5}))
    out = tmp_path / "ship" / "m.pt"
    m = finalize_run(run, "best.pt", str(out), lfw_dir=None, mantissa_bits=8)
    assert m["exported"] == str(out) and m["mantissa_bits"] == 8 and m["epoch"] == 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.pt"]  # no temporary file left behind
    assert is_compressed(out)
    blob = read_checkpoint(out)
    assert blob["meta"]["metrics"]["mantissa_bits"] == 8
    ref = model.state_dict()
    for k, v in blob["state_dict"].items():
        if v.is_floating_point():
            assert v.dtype == torch.float16
            normal = v.abs() >= 2 ** -14
            assert not (v.view(torch.int16) & 3)[normal].any(), k  # 2 of fp16's 10 mantissa bits dropped
            torch.testing.assert_close(v.float(), ref[k].float(), rtol=2 ** -8, atol=2 ** -21)
