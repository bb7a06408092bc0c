"""facecore.training.trainconfig: check_config refuses every field out of type or range, and train() runs it first."""
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from facecore.training.trainconfig import SETTING_OF, TrainConfig, check_config, cli_fields

ROOT = Path(__file__).resolve().parent.parent

BAD = [("lr", math.nan), ("lr", -1.0), ("lr", math.inf), ("lr", 0.0), ("epochs", 0), ("epochs", -3),
       ("epochs", "3"), ("batch_size", 0), ("batch_size", 1), ("embedding_dim", 0), ("input_size", 8),
       ("weight_decay", -1.0), ("min_images", 0), ("seed", -1), ("max_identities", -2), ("lfw_every", 0),
       ("num_threads", -1), ("cpu_bf16", 1), ("data_dir", ""), ("val_fraction", 1.5), ("val_fraction", math.nan),
       ("k_images", 0), ("p_identities", 0), ("warmup_epochs", -1.0), ("warmup_epochs", math.nan),
       ("unlabelled_limit", -1), ("optimizer", "adam"), ("arch", "resnet9000"), ("arch", None), ("loss", "nope"),
       ("augment", "mirrored"), ("loss_kwargs", []), ("bn_calibration_batches", -1)]
GOOD = [("lr", 1e-4), ("epochs", 1), ("input_size", 0), ("input_size", 112), ("max_identities", None),
        ("max_steps_per_epoch", None), ("num_threads", None), ("weight_decay", 0), ("val_fraction", 0.0),
        ("optimizer", "adamw"), ("arch", "inceptionresnetv1"), ("loss", "triplet"), ("augment", "none"), ("augment", "mirror"),
        ("init_from", None), ("lfw_dir", None), ("cpu_bf16", True)]


def test_the_defaults_pass():
    check_config(TrainConfig())


@pytest.mark.parametrize("field, value", GOOD)
def test_good_values_pass(field, value):
    check_config(replace(TrainConfig(), **{field: value}))


@pytest.mark.parametrize("field, value", BAD)
def test_bad_values_are_one_line_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^training configuration: {field}\b") as e:
        check_config(replace(TrainConfig(), **{field: value}))
    assert "\n" not in str(e.value)


def test_mapped_fields_use_the_shared_settings_limits():
    from facecore.core.settings import TRAINING_SETTINGS

    assert set(SETTING_OF.values()) <= set(TRAINING_SETTINGS)
    assert set(SETTING_OF) <= set(TrainConfig.__dataclass_fields__)


def test_train_checks_before_reading_anything(tmp_path):
    """The entry point: a NaN learning rate is refused although the data folder does not even exist."""
    from facecore.training.train import train

    cfg = TrainConfig(data_dir=str(tmp_path / "absent"), lr=math.nan, lfw_dir=None)
    with pytest.raises(ValueError, match="lr=nan must be a finite number"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("items, says", [(["lr"], "--set lr: expected FIELD=JSON"), (["=3"], "--set =3"),
                                         (["lr=abc"], "--set lr=abc: expected FIELD=JSON")])
def test_cli_fields_name_the_bad_item(items, says):
    with pytest.raises(ValueError, match=says):
        cli_fields(None, items)
    assert cli_fields(None, ["lr=NaN", 'arch="x"']) == {"lr": pytest.approx(math.nan, nan_ok=True), "arch": "x"}


def test_cli_refuses_nan_learning_rate_with_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "facecore.training.train", "--out", str(tmp_path / "run"), "--set", "lr=NaN",
                        "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "lr=nan must be a finite number" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
