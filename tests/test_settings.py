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
        assert name.isupper() and s.help and f"{name}: {type(s.default).__name__} (default {s.default!r})" in out
