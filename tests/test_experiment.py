import pytest
import torch

from facecore.networks.models import checkpoint_meta, create_model, is_compressed, read_checkpoint, save_checkpoint
from facecore.training.experiment import finalize_run


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


def test_finish_training_exports_each_checkpoint_and_writes_the_metrics(tmp_path, capsys):
    import json

    import pandas as pd

    from facecore.training.experiment import finish_training, training_config

    run = tmp_path / "run"
    model = create_model("efficientnet-b0", embedding_dim=16)
    for name, epoch in (("best.pt", 2), ("last.pt", 3)):
        save_checkpoint(run / name, model, checkpoint_meta("efficientnet-b0", 16, 64, classes=["a", "b"],
                                                           metrics={"epoch": epoch}))
    history = pd.DataFrame({"epoch": [1, 2, 3], "epoch_s": [1.0, 2.0, 3.0], "train_loss": [3.0, 2.0, 1.5]})
    cfg = training_config("triplet", {}, {"EPOCHS": 3})
    params = {"RUN_DIR": str(run), "LFW_DIR": "", "METRICS_PATH": str(tmp_path / "m.json"), "SHIP_MANTISSA_BITS": 8}
    s = finish_training(cfg, history, "cpu", params, exports={"min_val_loss": ("best.pt", str(tmp_path / "b.pt")),
                                                              "last_epoch": ("last.pt", "")}, extra={"note": 1})
    assert (s["min_val_loss"]["epoch"], s["last_epoch"]["epoch"]) == (2, 3)
    assert s["min_val_loss"]["exported"] == str(tmp_path / "b.pt") and "exported" not in s["last_epoch"]
    assert (s["epochs"], s["train_time_s"], s["last_train_loss"], s["note"]) == (3, 6.0, 1.5, 1)
    assert json.loads((tmp_path / "m.json").read_text())["min_val_loss"]["mantissa_bits"] == 8
    assert '"last_epoch"' in capsys.readouterr().out
    flat = finish_training(cfg, history, "cpu", {"RUN_DIR": str(run), "EXPORT_PATH": str(tmp_path / "c.pt")})
    assert flat["epoch"] == 2 and flat["exported"] == str(tmp_path / "c.pt")  # best.pt, merged at the top


def test_training_config_from_notebook_parameters():
    from facecore.training.experiment import notebook_params, training_config
    from facecore.pipeline import notebook_parameters

    params = {k: v for k, (_, v) in notebook_parameters("notebooks/triplet-loss/triplet-loss.ipynb").items()}
    params |= {"K_IMAGES": 3, "TRAINING": {"LFW_DIR": "", "EPOCHS": 4}, "unrelated": 1}
    cfg = training_config("triplet", {"margin": 0.3}, notebook_params("triplet", params))
    assert (cfg.loss, cfg.loss_kwargs, cfg.k_images, cfg.p_identities) == ("triplet", {"margin": 0.3}, 3, 32)
    assert cfg.lfw_dir is None and cfg.max_identities is None and cfg.init_from is None
    assert (cfg.epochs, cfg.lr, cfg.data_dir) == (4, 0.05, "cache/aligned/celeba-112")  # triplet's own LR default
    ce = training_config("ce", {}, {"EPOCHS": 2})
    assert ce.p_identities == 32 and ce.epochs == 2  # absent parameters keep TrainConfig's defaults


def test_training_dict_spreads_checks_and_prints(capsys):
    from facecore.training.experiment import NOTEBOOK_FIELDS, notebook_params, setup_training
    from facecore.core.settings import TRAINING_SETTINGS

    runtime = {"THRESHOLD_FPR", "SHIP_MANTISSA_BITS", "DEVICE", "THREADS"}  # read by setup/finish, not TrainConfig
    assert set(TRAINING_SETTINGS) - runtime <= set(NOTEBOOK_FIELDS)
    p = notebook_params("ce", {"RUN_DIR": "r", "TRAINING": {"LR": 1, "ARCH": "inceptionresnetv1"}})
    assert p["LR"] == 1.0 and isinstance(p["LR"], float) and p["ARCH"] == "inceptionresnetv1" and p["RUN_DIR"] == "r"
    assert p["EPOCHS"] == TRAINING_SETTINGS["EPOCHS"].default and "TRAINING" not in p
    assert notebook_params("ce", {"EPOCHS": 3}) == {"EPOCHS": 3}  # a notebook without TRAINING: as given
    with pytest.raises(ValueError, match="TRAINING: unknown setting 'EPOCH'; valid names: DATA_DIR, .*EPOCHS"):
        notebook_params("ce", {"TRAINING": {"EPOCH": 3}})
    with pytest.raises(ValueError, match="TRAINING: CPU_BF16 takes a value of type bool .*got int 1"):
        notebook_params("ce", {"TRAINING": {"CPU_BF16": 1}})
    with pytest.raises(ValueError, match="EPOCHS: give these in TRAINING only"):
        notebook_params("ce", {"EPOCHS": 3, "TRAINING": {}})
    cfg, device = setup_training("triplet", {}, {"TRAINING": {"EPOCHS": 2, "DEVICE": "cpu"}})
    out = capsys.readouterr().out
    assert (cfg.epochs, cfg.lr, device) == (2, 0.05, "cpu")
    assert [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["EPOCHS"], ["LR"], ["ARCH"])] == [
        ["ARCH", "'efficientnet-b0'"], ["EPOCHS", "2", "TRAINING"], ["LR", "0.05", "loss", "default"]]


TRAINING_NOTEBOOKS = ["notebooks/ce-loss/ce-loss.ipynb", "notebooks/arcface-loss/arcface-loss.ipynb",
                      "notebooks/triplet-loss/triplet-loss.ipynb", "notebooks/my-face-alignment.ipynb"]
OUTPUTS = ("EXPORT_PATH", "EXPORT_PATH_LAST", "METRICS_PATH", "OUTPUT")


@pytest.mark.parametrize("nb", TRAINING_NOTEBOOKS)
def test_training_notebook_defaults_never_overwrite_shipped_files(nb):
    from facecore.pipeline import notebook_parameters

    params = notebook_parameters(nb)
    outs = {k: params[k][1] for k in OUTPUTS if k in params}
    assert outs and all(v.startswith("runs/") for v in outs.values()), outs
    assert "sys.path" not in open(nb).read()


def test_full_profile_ships_explicitly():
    import config
    from facecore.pipeline import load_profile

    stages = load_profile("full")
    named = {v for s in stages for k, v in s.get("parameters", {}).items() if k in OUTPUTS}
    promoted = [s["command"] for s in stages if "promote" in s.get("command", [])]
    named |= {config.params[c[c.index("promote") + 2]] for c in promoted}  # promote CANDIDATE NAME
    for name, path in config.params.items():  # every shipped model is written by a stage that names it
        assert path in named, (name, path)


@pytest.mark.parametrize("training, says", [({"LR": float("nan")}, "LR=nan must be a finite number"),
                                            ({"EPOCHS": 0}, "EPOCHS=0 must be in"), ({"ARCH": "resnet"}, "ARCH='resnet'"),
                                            ({"EPOCHS": "abc"}, "EPOCHS takes a value of type int")])
def test_a_notebooks_training_is_checked_against_the_settings_limits(training, says):
    """The notebooks' way in: ``setup_training`` -> ``notebook_params`` refuses before building a config."""
    from facecore.training.experiment import notebook_params

    with pytest.raises(ValueError, match=f"^TRAINING: {says}"):
        notebook_params("ce", {"TRAINING": training, "RUN_DIR": "r"})
