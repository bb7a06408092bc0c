"""The settings the loss-family training notebooks share, declared once.

The CE, ArcFace and triplet notebooks declare their loss's own parameters and their outputs in their
parameters cell, and take everything they share (data, backbone, schedule, export, device) as one
parameter, ``TRAINING``: a dict of NAME -> value, where a name left out keeps its default below::

    papermill notebooks/ce-loss/ce-loss.ipynb out.ipynb -y "TRAINING: {EPOCHS: 3, ARCH: inceptionresnetv1}"

``python -m facecore.pipeline`` puts these names into ``TRAINING`` itself, so its profiles and its
``-p NAME=VALUE`` name them flat (``-p EPOCHS=3``). A loss may change a default (``training_defaults``
on its class: triplet's learning rate). This module imports nothing heavy: the pipeline reads it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    default: object
    help: str


TRAINING_SETTINGS: dict[str, Setting] = {s_name: Setting(*v) for s_name, v in {
    "DATA_DIR": ("cache/aligned/celeba-112", "aligned training crops (alignment notebook output), <identity>/<image>"),
    "LFW_DIR": ("cache/aligned/lfw-112", "aligned LFW crops for the LFW accuracy during training and at export (\"\": skip)"),
    "ARCH": ("efficientnet-b0", "backbone: efficientnet-b0..b3 or inceptionresnetv1 (facecore.networks.models)"),
    "EMBEDDING_DIM": (512, "embedding size"),
    "INPUT_SIZE": (64, "network input side in pixels (aligned 112 px crops are resized)"),
    "MIN_IMAGES": (10, "keep identities with at least this many images"),
    "MAX_IDENTITIES": (0, "keep only the N largest identities (0: all) - for smoke runs"),
    "EPOCHS": (30, "training epochs (cosine schedule over all of them)"),
    "BATCH_SIZE": (128, "images per step"),
    "LR": (0.1, "peak learning rate (SGD, Nesterov momentum 0.9, 1 warm-up epoch)"),
    "WEIGHT_DECAY": (5e-4, "L2 weight decay"),
    "AUGMENT": ("full", "\"full\" (mirror, shift/scale/rotation, brightness/contrast), \"photometric\" or \"none\""),
    "MAX_STEPS_PER_EPOCH": (0, "cap on steps per epoch (0: a full pass) - for smoke runs"),
    "LFW_EVERY": (2, "LFW accuracy after every N epochs (and the last)"),
    "INIT_FROM": ("", "start from this checkpoint (fine-tuning: a shipped .pt or a run's last.pt, whose classifier "
                      "seeds the class centres of CE and ArcFace); \"\": random init"),
    "THRESHOLD_FPR": (0.001, "LFW false-positive rate at which the recognition threshold is calibrated"),
    "SHIP_MANTISSA_BITS": (10, "fp16 mantissa bits kept in the exported weights (10: plain fp16; 9: ~6 % smaller file)"),
    "DEVICE": ("auto", "\"auto\", \"cpu\" or \"cuda\""),
    "THREADS": (0, "torch CPU threads (0: default)"),
    "SEED": (0, "random seed (identity split, init, batches)"),
    "CPU_BF16": (False, "CPU training under bfloat16 autocast (~1.8x faster on CPUs with AVX512-BF16; off: float32)"),
}.items()}


def _fits(value: object, default: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_training(training: dict, where: str = "TRAINING") -> None:
    """Raise ValueError (naming ``where``) for a name that is not a shared setting or a value of the
    wrong type; the message lists the valid names."""
    if not isinstance(training, dict):
        raise ValueError(f"{where} must be a dict of setting name -> value, got {type(training).__name__}")
    for name, value in training.items():
        if name not in TRAINING_SETTINGS:
            raise ValueError(f"{where}: unknown setting {name!r}; valid names: {', '.join(TRAINING_SETTINGS)} "
                             "(facecore.core.settings.TRAINING_SETTINGS)")
        default = TRAINING_SETTINGS[name].default
        if not _fits(value, default):
            raise ValueError(f"{where}: {name} takes a value of type {type(default).__name__} (default {default!r}), "
                             f"got {type(value).__name__} {value!r}")


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


def main() -> None:
    """``python -m facecore.core.settings``: every shared setting, its type, default and meaning."""
    for name, s in TRAINING_SETTINGS.items():
        print(f"{name}: {type(s.default).__name__} (default {s.default!r})\n    {s.help}")


if __name__ == "__main__":
    main()
