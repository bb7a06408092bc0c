"""``TrainConfig``: everything a training run depends on (stored in every checkpoint; a run resumes
only with the configuration it was started with). ``facecore.training.experiment`` builds one from a notebook's
parameters; ``python -m facecore.training.train --config FILE.json`` from a JSON file. ``check_config`` refuses a
value of the wrong type or out of range before a run starts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.checks import Limits
from ..core.settings import check_setting
from ..networks.losses import list_losses
from ..networks.models import list_models
from .data import AUGMENTATIONS


@dataclass
class TrainConfig:
    """Everything a run depends on (stored in every checkpoint)."""

    data_dir: str = "cache/aligned/celeba-112"
    arch: str = "efficientnet-b0"
    loss: str = "arcface"
    loss_kwargs: dict = field(default_factory=dict)
    embedding_dim: int = 512
    input_size: int = 0  # 0: the architecture's default (facecore.networks.models.default_input_size)
    min_images: int = 10
    max_identities: int | None = None
    val_fraction: float = 0.1
    epochs: int = 20
    batch_size: int = 128
    p_identities: int = 32  # triplet: P identities x K images per batch
    k_images: int = 4
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    lfw_dir: str | None = "cache/aligned/lfw-112"
    lfw_pairs: str | None = None
    cache_dir: str = "cache/crops"
    max_steps_per_epoch: int | None = None
    bn_calibration_batches: int = 20
    lfw_every: int = 2  # LFW accuracy every N epochs (and at the last one)
    num_threads: int | None = None
    init_from: str | None = None  # checkpoint to start from (fine-tuning); None: random initialisation
    teacher: str | None = None  # distillation: a facecore.training.teachers name (its targets go to the "distill" loss)
    teacher_kwargs: dict = field(default_factory=dict)
    unlabelled_dir: str | None = None  # distillation: aligned faces without identities, trained on beside data_dir
    unlabelled_limit: int = 0  # use only the first N unlabelled faces (0: all) - for smoke runs
    teacher_flip: bool = False  # teacher targets average each crop's and its mirror's embedding (2x teacher time)
    teacher_center: bool = True  # subtract the targets' mean and re-normalise (facecore.training.distill.center_targets)
    cpu_bf16: bool = False  # CPU training under bfloat16 autocast (~1.8x faster where the CPU has AVX512-BF16)
    augment: str = "full"  # a facecore.training.data.AUGMENTATIONS name: "full", "mirror", "photometric" (no mirror or geometry), "none"


# TrainConfig field -> the shared setting (facecore.core.settings) whose type and limits it takes.
SETTING_OF: dict[str, str] = {
    "data_dir": "DATA_DIR", "embedding_dim": "EMBEDDING_DIM", "input_size": "INPUT_SIZE", "min_images": "MIN_IMAGES",
    "max_identities": "MAX_IDENTITIES", "epochs": "EPOCHS", "batch_size": "BATCH_SIZE", "lr": "LR",
    "weight_decay": "WEIGHT_DECAY", "seed": "SEED", "max_steps_per_epoch": "MAX_STEPS_PER_EPOCH",
    "lfw_every": "LFW_EVERY", "num_threads": "THREADS", "cpu_bf16": "CPU_BF16",
}
# The fields no shared setting covers: (type, limits).
OWN_LIMITS: dict[str, tuple[type, Limits]] = {
    "val_fraction": (float, Limits(0, 1)), "p_identities": (int, Limits(1, 65536)), "k_images": (int, Limits(1, 65536)),
    "warmup_epochs": (float, Limits(0, 100000)), "bn_calibration_batches": (int, Limits(0)),
    "unlabelled_limit": (int, Limits(0)), "optimizer": (str, Limits(choices=("adamw", "sgd"))),
}
NONE_OK = {"max_identities", "max_steps_per_epoch", "num_threads", "lfw_dir", "lfw_pairs", "init_from", "teacher",
           "unlabelled_dir"}


def check_config(cfg: TrainConfig, where: str = "training configuration") -> None:
    """Raise ValueError (one line naming the field) for a value of the wrong type or out of range (the
    shared settings' limits, ``OWN_LIMITS``) or a backbone, loss or augmentation no registry knows;
    ``facecore.training.train.train`` calls it before reading any data."""
    for name, value in vars(cfg).items():
        if value is None and name in NONE_OK:
            continue
        if name in SETTING_OF:
            check_setting(SETTING_OF[name], value, where, label=name)
        elif name in OWN_LIMITS:
            kind, limits = OWN_LIMITS[name]
            fits = isinstance(value, kind) or (kind is float and isinstance(value, int))
            problem = (f"takes a value of type {kind.__name__}" if not fits or isinstance(value, bool)
                       else limits.problem(value))
            if problem:
                raise ValueError(f"{where}: {name}={value!r} {problem}")
    _check_names(cfg, where)


def _check_names(cfg: TrainConfig, where: str) -> None:
    """The backbone, loss and augmentation must be registered names (an in-process registration counts)."""
    for name, value, valid in (("arch", cfg.arch, list_models()), ("loss", cfg.loss, list_losses()),
                               ("augment", cfg.augment, sorted(AUGMENTATIONS))):
        if not isinstance(value, str) or value not in valid:
            raise ValueError(f"{where}: {name}={value!r} is not one of {', '.join(valid)}")
    for name in ("loss_kwargs", "teacher_kwargs"):
        if not isinstance(getattr(cfg, name), dict):
            raise ValueError(f"{where}: {name} must be a dict, got {type(getattr(cfg, name)).__name__}")


def cli_fields(config: str | None, items: list[str]) -> dict:
    """TrainConfig fields from ``--config FILE.json`` and ``--set FIELD=JSON`` (ValueError naming the bad one)."""
    fields: dict = {}
    if config:
        try:
            fields = json.loads(Path(config).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"--config {config}: cannot be read as JSON ({e})") from None
        if not isinstance(fields, dict):
            raise ValueError(f"--config {config}: must hold a JSON object of TrainConfig fields")
    for item in items:
        k, sep, v = item.partition("=")
        try:
            fields[k.strip()] = json.loads(v) if sep and k.strip() else json.loads("")
        except json.JSONDecodeError as e:
            why = f" ({e.msg})" if sep and k.strip() else ""
            raise ValueError(f"--set {item}: expected FIELD=JSON, e.g. lr=0.01 or data_dir='\"x\"'{why}") from None
    return fields
