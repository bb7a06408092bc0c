import pytest

from facecore.core.settings import TRAINING_SETTINGS, check_training, describe, main, training_values


def test_values_take_defaults_then_the_loss_then_training():
    v = training_values({"EPOCHS": 3}, {"LR": 0.05, "EPOCHS": 9})
    assert list(v) == list(TRAINING_SETTINGS)
    assert (v["EPOCHS"], v["LR"], v["BATCH_SIZE"]) == (3, 0.05, TRAINING_SETTINGS["BATCH_SIZE"].default)
    assert training_values({"WEIGHT_DECAY": 0})["WEIGHT_DECAY"] == 0.0  # an int where a float is taken
    lines = describe(v, {"EPOCHS": 3}, {"LR": 0.05}).splitlines()
    assert len(lines) == len(TRAINING_SETTINGS)
    assert [ln.split()[-1] for ln in lines if ln.split()[0] in ("EPOCHS", "LR")] == ["TRAINING", "default"]


@pytest.mark.parametrize("training, says", [
    ({"EPOCH": 3}, "unknown setting 'EPOCH'; valid names: DATA_DIR, LFW_DIR, ARCH"),
    ({"EPOCHS": 2.5}, "EPOCHS takes a value of type int (default 30), got float 2.5"),
    ({"EPOCHS": True}, "EPOCHS takes a value of type int"),
    ({"CPU_BF16": 0}, "CPU_BF16 takes a value of type bool"),
    ({"LR": "0.1"}, "LR takes a value of type float"),
    ([("EPOCHS", 3)], "must be a dict of setting name -> value, got list"),
])
def test_bad_training_is_named(training, says):
    with pytest.raises(ValueError, match="TRAINING: " + says.replace("(", r"\(").replace(")", r"\)")
                       if not says.startswith("must") else says):
        check_training(training)


def test_every_setting_has_a_default_and_meaning(capsys):
    main()
    out = capsys.readouterr().out
    for name, s in TRAINING_SETTINGS.items():
        assert name.isupper() and s.help and f"{name}: {type(s.default).__name__} (default {s.default!r}" in out


# Every shared setting: values it must take and values it must refuse (type or range).
GOOD_BAD = {
    "DATA_DIR": (["x", "cache/aligned/celeba-112"], ["", 3]),
    "LFW_DIR": (["", "cache/aligned/lfw-112"], [None]),
    "ARCH": (["efficientnet-b0", "inceptionresnetv1"], ["resnet9000", "", "EfficientNet-B0"]),
    "EMBEDDING_DIM": ([2, 128, 512, 8192], [0, 1, -3, 8193, 512.0]),
    "INPUT_SIZE": ([0, 16, 64, 112, 1024], [-1, 1, 15, 1025, 64.0]),
    "MIN_IMAGES": ([1, 10], [0, -1]),
    "MAX_IDENTITIES": ([0, 10], [-1]),
    "EPOCHS": ([1, 30, 100000], [0, -3, 100001, 2.5, "abc", True]),
    "BATCH_SIZE": ([2, 128], [0, 1, -8]),
    "LR": ([1e-6, 0.1, 1, 10, 1], [0, -1, float("nan"), float("inf"), 10.5, "0.1"]),
    "WEIGHT_DECAY": ([0, 0.0, 5e-4, 1], [-1e-4, float("nan"), 2]),
    "AUGMENT": (["full", "mirror", "photometric", "none"], ["flip", ""]),
    "MAX_STEPS_PER_EPOCH": ([0, 6], [-1]),
    "LFW_EVERY": ([1, 2], [0, -1]),
    "INIT_FROM": (["", "runs/x/last.pt"], [0]),
    "THRESHOLD_FPR": ([1e-3, 0.5, 1], [0, -0.1, 1.5, float("nan")]),
    "SHIP_MANTISSA_BITS": ([1, 9, 10], [0, 11]),
    "DEVICE": (["auto", "cpu", "cuda", "cuda:1"], ["gpu", "cuda:", "CPU"]),
    "THREADS": ([0, 2], [-1]),
    "SEED": ([0, 12345], [-1, 2**32]),
    "CPU_BF16": ([True, False], [0, "yes"]),
}


def test_every_setting_has_a_table_row():
    assert set(GOOD_BAD) == set(TRAINING_SETTINGS)


@pytest.mark.parametrize("name", sorted(GOOD_BAD))
def test_limits_take_good_values_and_refuse_bad_ones(name):
    from facecore.core.settings import check_setting

    good, bad = GOOD_BAD[name]
    check_setting(name, TRAINING_SETTINGS[name].default)
    for v in good:
        check_setting(name, v)
        check_training({name: v})
    for v in bad:
        with pytest.raises(ValueError, match=f"^TRAINING: {name}"):
            check_setting(name, v)
        with pytest.raises(ValueError, match=f"^stage ce: {name}"):
            check_training({name: v}, "stage ce")


def test_out_of_range_is_one_line_naming_value_and_range():
    with pytest.raises(ValueError, match=r"^TRAINING: LR=nan must be a finite number \(default 0.1\)$"):
        check_training({"LR": float("nan")})
    with pytest.raises(ValueError, match=r"^TRAINING: EPOCHS=0 must be in \[1, 100000\] \(default 30\)$"):
        check_training({"EPOCHS": 0})
    with pytest.raises(ValueError, match="EPOCHS=-3"):
        training_values({"EPOCHS": -3})  # the notebooks' way in (facecore.training.experiment.notebook_params)


def test_static_choices_are_the_registries():
    """ARCH and AUGMENT are checked without importing torch; these lists must stay the registries' built-ins."""
    from facecore.training.data import AUGMENTATIONS
    from facecore.networks.models import list_models
    from facecore.core.settings import ARCHS, AUGMENTS

    assert sorted(ARCHS) == [m for m in list_models() if m != "tiny-test"]
    assert sorted(AUGMENTS) == sorted(AUGMENTATIONS)


def test_loss_defaults_are_within_limits():
    from facecore.networks.losses import _REGISTRY as losses

    for name, cls in losses.items():
        check_training(dict(getattr(cls, "training_defaults", {})), f"loss {name}")
