"""``TrainConfig``: everything a training run depends on (stored in every checkpoint; a run resumes
only with the configuration it was started with). ``facecore.training.experiment`` builds one from a notebook's
parameters; ``python -m facecore.training.train --config FILE.json`` from a JSON file.
"""
from __future__ import annotations

from dataclasses import dataclass, field


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
    augment: str = "full"  # a facecore.training.data.AUGMENTATIONS name: "full", "photometric" (no mirror or geometry), "none"
