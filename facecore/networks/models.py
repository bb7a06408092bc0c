"""Embedding networks by name, and self-describing checkpoints.

``create_model("efficientnet-b0", embedding_dim=512)`` returns a module mapping a normalised
``(N, 3, S, S)`` batch to L2-normalised ``(N, D)`` embeddings. A checkpoint stores the weights and
everything needed to use them (architecture, embedding size, input size, normalisation,
alignment crop size, classes, training config, metrics; see ``facecore.core.checkpoint``), and loads with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from efficientnet_pytorch import EfficientNet
from facenet_pytorch import InceptionResnetV1

from ..core.checkpoint import (CHECKPOINT_FORMAT, check_meta, checkpoint_bytes, checkpoint_meta,  # noqa: F401
                               float_state_dict, is_compressed, load_weights, read_checkpoint, round_mantissa,
                               save_checkpoint, write_checkpoint)
from ..core.preprocessing import MEAN, STD, meta_to_tensor, to_tensor
from ..core.registry import Registry
from ..core.zoo import verify_shipped
from .heads import HeadedModel, backbone_dim, head_from_meta, split_state

_REGISTRY = Registry("model", add_with="facecore.networks.models.register_model")
register_model = _REGISTRY.register
list_models = _REGISTRY.names


def create_model(name: str, embedding_dim: int = 512, **kwargs: Any) -> nn.Module:
    """A randomly initialised embedding network from the registry (no weights are downloaded)."""
    return _REGISTRY.lookup(name)(embedding_dim=embedding_dim, **kwargs)


class InceptionResnetV1Embedder(nn.Module):
    """facenet-pytorch's InceptionResnetV1 (random init) with an embedding head of any size."""

    min_input_size = 80

    def __init__(self, embedding_dim: int = 512, dropout: float = 0.2):
        super().__init__()

        self.net = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=dropout)
        if embedding_dim != 512:
            self.net.last_linear = nn.Linear(1792, embedding_dim, bias=False)
            self.net.last_bn = nn.BatchNorm1d(embedding_dim, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # already L2-normalised


class EfficientNetEmbedder(nn.Module):
    """EfficientNet trunk (efficientnet-pytorch ``from_name``) + BN-dropout-FC-BN embedding head.

    BatchNorm momentum is PyTorch's 0.1, not the library's TensorFlow-style 0.01, whose running
    statistics lag for hundreds of steps and can collapse eval-mode embeddings.
    """

    min_input_size = 32

    def __init__(self, variant: str = "efficientnet-b0", embedding_dim: int = 512, dropout: float = 0.2):
        super().__init__()

        self.trunk = EfficientNet.from_name(variant, batch_norm_momentum=0.9, include_top=False)
        ch = self.trunk._bn1.num_features
        self.head = nn.Sequential(nn.BatchNorm2d(ch), nn.Dropout(dropout), nn.Flatten(),
                                  nn.Linear(ch, embedding_dim), nn.BatchNorm1d(embedding_dim))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.trunk.extract_features(x)
        return F.normalize(self.head(self.pool(f)), dim=1)


register_model("inceptionresnetv1")(lambda embedding_dim=512, **kw: InceptionResnetV1Embedder(embedding_dim, **kw))
for _b in range(4):
    register_model(f"efficientnet-b{_b}")(
        lambda embedding_dim=512, _v=f"efficientnet-b{_b}", **kw: EfficientNetEmbedder(_v, embedding_dim, **kw))


def default_input_size(name: str) -> int:
    """Training input size used by the reference models (chosen for 2-core CPU training)."""
    return 96 if name == "inceptionresnetv1" else 64


def preprocess(crops: np.ndarray, input_size: int, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB aligned crops -> normalised float (N, 3, S, S) tensor
    (``facecore.core.preprocessing.to_tensor``)."""
    return to_tensor(crops, input_size, mean, std)


@dataclass
class Embedder:
    """A loaded model with its preprocessing: aligned crops in, unit embeddings out."""

    model: nn.Module
    meta: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    @property
    def align_size(self) -> int:
        return int(self.meta.get("align_size", 112))

    @torch.inference_mode()
    def embed(self, crops: np.ndarray, batch_size: int = 128, flip: bool = False) -> np.ndarray:
        """(N, D) float32 unit embeddings of aligned uint8 crops; ``flip`` adds the mirrored crop's."""
        self.model.eval()
        out = []
        for i in range(0, len(crops), batch_size):
            x = meta_to_tensor(crops[i:i + batch_size], self.meta).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            if flip:  # one forward of crops and mirrors: faster than two for the few faces of a video frame
                both = self.model(torch.cat([x, torch.flip(x, dims=[3])]))
                e = both[: len(x)] + both[len(x):]
            else:
                e = self.model(x)
            out.append(F.normalize(e.float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, int(self.meta.get("embedding_dim", 512))), np.float32)
        return np.concatenate(out).astype(np.float32)

    def without_head(self) -> "Embedder":
        """The backbone alone of a model with a teacher-space head (``facecore.networks.heads``): its own embedding,
        with the thresholds measured for it at export (``meta["backbone"]``); other models unchanged."""
        if not self.meta.get("head"):
            return self
        drop = {"head", "backbone", "threshold", "threshold_fpr", "thresholds_by_fpr", "calibrated_on"}
        meta = {k: v for k, v in self.meta.items() if k not in drop}
        meta.update(self.meta.get("backbone") or {}, embedding_dim=int(self.meta["head"]["in_dim"]))
        return Embedder(self.model.backbone, meta, self.device)


def load_embedder(path: str | os.PathLike, device: str = "cpu") -> Embedder:
    """Rebuild the network a checkpoint describes, load its weights (as float32) and return it.

    A shipped model (``facecore.core.zoo_table.params``) is checked against its recorded SHA-256, any other
    checkpoint against its zip CRCs; its meta and weights as ``read_checkpoint`` does, its backbone
    against the registry and the input size against the backbone's smallest. Weights that do not fit
    the architecture named in meta raise one line naming the file."""
    hashed = verify_shipped(path)
    blob = read_checkpoint(path, verify=not hashed)  # a matching SHA-256 already covers every byte
    meta = blob["meta"]
    check_meta(meta, path, list_models())
    model = create_model(meta["arch"], embedding_dim=backbone_dim(meta))
    if int(meta["input_size"]) < getattr(model, "min_input_size", 1):
        raise ValueError(f"{path}: meta 'input_size' = {meta['input_size']} is below the smallest input "
                         f"{meta['arch']} takes ({model.min_input_size}); re-export it from its run")
    body, head_weights = split_state(blob["state_dict"])
    load_weights(model, body, path)
    if meta.get("head"):  # a distilled student's map into its teacher's space (facecore.networks.heads)
        head = head_from_meta(meta)
        load_weights(head, head_weights, path, "head weights")
        model = HeadedModel(model, head)
    model = model.to(device, memory_format=torch.channels_last).eval()
    return Embedder(model, meta, device)


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """Recompute BatchNorm running statistics as exact averages over ``batches`` ("precise BN").

    Momentum-averaged statistics lag the weights (badly so with efficientnet-pytorch's TF-style
    momentum, and early in training), and eval-mode embeddings can collapse to a constant; this
    makes eval mode see the current network.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or not batches:
        return
    was_training = model.training
    saved = [m.momentum for m in bns]
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    for x in batches:
        model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.train(was_training)
