"""The settings the loss-family training notebooks share, declared once.

The CE, ArcFace and triplet notebooks declare their loss's own parameters and their outputs in their
parameters cell, and take everything they share (data, backbone, schedule, export, device) as one
parameter, ``TRAINING``: a dict of NAME -> value, where a name left out keeps its default below::

    papermill notebooks/ce-loss/ce-loss.ipynb out.ipynb -y "TRAINING: {EPOCHS: 3, ARCH: inceptionresnetv1}"

``python -m facecore.pipeline`` puts these names into ``TRAINING`` itself, so its profiles and its
``-p NAME=VALUE`` name them flat (``-p EPOCHS=3``). A loss may change a default (``training_defaults``
on its class: triplet's learning rate). Each setting declares its limits (``Setting.limits``, listed by
``python -m facecore.core.settings``); every way in checks them before any work: the pipeline's profiles and
``-p``, a notebook's ``TRAINING``, and ``TrainConfig`` (``facecore.training.trainconfig.check_config``, run by
``facecore.training.train.train``). This module imports nothing heavy: the pipeline reads it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .checks import Limits


@dataclass(frozen=True)
class Setting:
    default: object
    help: str
    limits: Limits = Limits()


# The built-in backbones (facecore.networks.models registers them; tests/test_settings.py keeps the two lists
# equal). A notebook run by the pipeline starts a fresh kernel, where only these exist.
ARCHS = ("efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3", "inceptionresnetv1")
AUGMENTS = ("full", "mirror", "photometric", "none")  # facecore.training.data.AUGMENTATIONS

TRAINING_SETTINGS: dict[str, Setting] = {s_name: Setting(*v) for s_name, v in {
    "DATA_DIR": ("cache/aligned/celeba-112", "aligned training crops (alignment notebook output), <identity>/<image>",
                 Limits(nonempty=True)),
    "LFW_DIR": ("cache/aligned/lfw-112", "aligned LFW crops for the LFW accuracy during training and at export (\"\": skip)"),
    "ARCH": ("efficientnet-b0", "backbone: efficientnet-b0..b3 or inceptionresnetv1 (facecore.networks.models)",
             Limits(choices=ARCHS)),
    "EMBEDDING_DIM": (512, "embedding size", Limits(2, 8192)),
    "INPUT_SIZE": (64, "network input side in pixels (aligned 112 px crops are resized; 0: the backbone's default)",
                   Limits(16, 1024, zero_ok=True)),
    "MIN_IMAGES": (10, "keep identities with at least this many images", Limits(1)),
    "MAX_IDENTITIES": (0, "keep only the N largest identities (0: all) - for smoke runs", Limits(0)),
    "EPOCHS": (30, "training epochs (cosine schedule over all of them)", Limits(1, 100000)),
    "BATCH_SIZE": (128, "images per step (BatchNorm needs 2 or more)", Limits(2, 65536)),
    "LR": (0.1, "peak learning rate (SGD, Nesterov momentum 0.9, 1 warm-up epoch)", Limits(0, 10, low_open=True)),
    "WEIGHT_DECAY": (5e-4, "L2 weight decay", Limits(0, 1)),
    "AUGMENT": ("full", "\"full\" (mirror, shift/scale/rotation, brightness/contrast), \"mirror\" (mirror and brightness/contrast), \"photometric\" or \"none\"",
                Limits(choices=AUGMENTS)),
    "MAX_STEPS_PER_EPOCH": (0, "cap on steps per epoch (0: a full pass) - for smoke runs", Limits(0)),
    "LFW_EVERY": (2, "LFW accuracy after every N epochs (and the last)", Limits(1)),
    "INIT_FROM": ("", "start from this checkpoint (fine-tuning: a shipped .pt or a run's last.pt, whose classifier "
                      "seeds the class centres of CE and ArcFace); \"\": random init"),
    "THRESHOLD_FPR": (0.001, "LFW false-positive rate at which the recognition threshold is calibrated",
                      Limits(0, 1, low_open=True)),
    "SHIP_MANTISSA_BITS": (10, "fp16 mantissa bits kept in the exported weights (10: plain fp16; 9: ~6 % smaller file)",
                           Limits(1, 10)),
    "DEVICE": ("auto", "\"auto\", \"cpu\" or \"cuda\" (or \"cuda:N\")", Limits(pattern=r"auto|cpu|cuda(:\d+)?")),
    "THREADS": (0, "torch CPU threads (0: default)", Limits(0, 4096)),
    "SEED": (0, "random seed (identity split, init, batches)", Limits(0, 2**32 - 1)),
    "CPU_BF16": (False, "CPU training under bfloat16 autocast (~1.8x faster on CPUs with AVX512-BF16; off: float32)"),
}.items()}


def _fits(value: object, default: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_setting(name: str, value: object, where: str = "TRAINING", label: str | None = None) -> None:
    """Raise ValueError (``where: label ...``, label defaulting to ``name``) when ``value`` is not of the
    shared setting ``name``'s type or outside its limits (``Setting.limits``)."""
    setting, label = TRAINING_SETTINGS[name], label or name
    if not _fits(value, setting.default):
        raise ValueError(f"{where}: {label} takes a value of type {type(setting.default).__name__} "
                         f"(default {setting.default!r}), got {type(value).__name__} {value!r}")
    problem = setting.limits.problem(value)
    if problem:
        raise ValueError(f"{where}: {label}={value!r} {problem} (default {setting.default!r})")


def check_training(training: dict, where: str = "TRAINING") -> None:
    """Raise ValueError (naming ``where``) for a name that is not a shared setting, or a value of the
    wrong type or out of its limits (``check_setting``); the message lists the valid names."""
    if not isinstance(training, dict):
        raise ValueError(f"{where} must be a dict of setting name -> value, got {type(training).__name__}")
    for name, value in training.items():
        if name not in TRAINING_SETTINGS:
            raise ValueError(f"{where}: unknown setting {name!r}; valid names: {', '.join(TRAINING_SETTINGS)} "
                             "(facecore.core.settings.TRAINING_SETTINGS)")
        check_setting(name, value, where)


def training_values(training: dict, loss_defaults: dict | None = None) -> dict:
    """Every shared setting's value: the defaults above, then ``loss_defaults``, then ``training``
    (checked with ``check_training``)."""
    check_training(loss_defaults or {}, "a loss's training_defaults")
    check_training(training)
    values = {n: s.default for n, s in TRAINING_SETTINGS.items()} | (loss_defaults or {}) | training
    return {n: float(v) if isinstance(TRAINING_SETTINGS[n].default, float) else v for n, v in values.items()}


def describe(values: dict, training: dict, loss_defaults: dict | None = None) -> str:
    """One line a setting: name, value, and where the value came from (TRAINING, the loss, or default)."""
    def source(n: str) -> str:
        return "TRAINING" if n in training else "loss default" if n in (loss_defaults or {}) else ""

    return "\n".join(f"  {n:20s} {values[n]!r:32s} {source(n)}".rstrip() for n in values)


TRAINING_HELP = ("shared settings to change, by name (data, backbone, schedule, export, device); "
                 "the values in effect are printed below")


def _literal_text(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def training_block(loss_defaults: dict | None = None) -> str:
    """The ``TRAINING`` parameter of a loss notebook's parameters cell: an empty dict whose commented
    entries are every shared setting at its default (``loss_defaults`` where the loss has its own), so a
    Jupyter user uncomments a line to change it. ``tools/render_docs.py`` writes it into the notebooks."""
    loss_defaults = loss_defaults or {}
    check_training(loss_defaults, "a loss's training_defaults")
    lines = ["TRAINING: dict = {",
             "    # every shared setting at its default (facecore.core.settings): uncomment a line to change it"]
    for name, s in TRAINING_SETTINGS.items():
        note = " (this loss's default)" if name in loss_defaults else ""
        value = _literal_text(loss_defaults.get(name, s.default))
        lines.append(f"    # {json.dumps(name)}: {value},  # {s.help}{note}")
    return "\n".join(lines + [f"}}  # {TRAINING_HELP}"])


def main() -> None:
    """``python -m facecore.core.settings``: every shared setting, its type, default and meaning."""
    for name, s in TRAINING_SETTINGS.items():
        limits = s.limits.describe()
        limits = f", {limits}" if limits else ""
        print(f"{name}: {type(s.default).__name__} (default {s.default!r}{limits})\n    {s.help}")


if __name__ == "__main__":
    main()
