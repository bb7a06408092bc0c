"""Losses by name, one contract: ``loss(embeddings, labels) -> scalar``.

Losses with class centres (``ce``, ``arcface``) own them as parameters and expose
``logits(embeddings)`` for classification accuracy. Embeddings are the models' unit vectors.

Each loss class declares what training needs from it, so the trainer never checks names:

- ``centres_key``: state-dict key of its class centres (``None``: no centres; only losses with
  centres are built with ``embedding_dim``/``num_classes``, and warm-starting copies this key);
- ``sampler``: ``"shuffled"`` (batches of a shuffled pass) or ``"pk"`` (P identities x K images);
- ``weight_decay``: whether its own parameters take the optimiser's weight decay;
- ``training_defaults`` (optional): shared training settings whose default differs for this loss
  (``facecore.core.settings`` names, e.g. triplet's ``LR``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.registry import Registry

_REGISTRY = Registry("loss", add_with="facecore.networks.losses.register_loss")
register_loss = _REGISTRY.register
list_losses = _REGISTRY.names


def loss_class(name: str) -> type:
    """The registered class of a loss name; an unknown name lists the valid ones."""
    return _REGISTRY.lookup(name)


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """A loss from the registry; ``num_classes``/``embedding_dim`` for losses with class centres."""
    return loss_class(name)(**kwargs)


def build_loss(name: str, kwargs: dict, embedding_dim: int, num_classes: int) -> nn.Module:
    """A loss for a training run: losses with class centres also get the embedding size and class count."""
    if loss_class(name).centres_key is not None:
        kwargs = {**kwargs, "embedding_dim": embedding_dim, "num_classes": num_classes}
    return create_loss(name, **kwargs)


def centres_keys() -> set[str]:
    """The class-centre keys of every registered loss (to find centres in any run's loss state)."""
    return {c.centres_key for c in _REGISTRY.values() if c.centres_key is not None}


@register_loss("ce")
class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over a linear classifier (with bias) on ``scale`` x the unit embedding.

    A plain linear layer on unit vectors would need huge weights for confident logits; the fixed
    ``scale`` gives them room, and the classifier stays an ordinary unconstrained one.
    """

    has_centres, centres_key, sampler, weight_decay = True, "fc.weight", "shuffled", True

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 16.0):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.scale = scale

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.fc(self.scale * embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(embeddings), labels)


@register_loss("arcface")
class ArcFaceLoss(nn.Module):
    """Additive angular margin (Deng et al. 2019): the target logit is ``scale * cos(theta + margin_rad)``.

    Where ``theta + margin_rad`` would pass pi the target logit is ``cos(theta) - margin_rad * sin(margin_rad)``
    (insightface's monotone extension). ``margin_rad=0`` is scaled-cosine softmax (NormFace).

    ``margin_warmup_steps``: the margin grows linearly from 0 over that many training calls. Trained
    from scratch on a small data set with the full margin at once, ArcFace falls into a degenerate
    minimum (every embedding on one point, every centre opposite it: loss ~14 instead of ~22, no
    discrimination); starting as NormFace avoids it. The step count is a buffer, so it resumes.
    """

    has_centres, centres_key, sampler = True, "centres", "shuffled"
    weight_decay = False  # decay would only shrink the normalised centres (raising their step size)

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 32.0, margin_rad: float = 0.5,
                 margin_warmup_steps: int = 0):
        super().__init__()
        # Rows start near unit norm: only their direction counts, and the gradient through the
        # normalisation grows as 1/norm, so tiny initial rows (std 0.01) would thrash every step.
        self.centres = nn.Parameter(torch.randn(num_classes, embedding_dim) / math.sqrt(embedding_dim))
        self.scale, self.margin_rad, self.margin_warmup_steps = scale, margin_rad, margin_warmup_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_margin(self) -> float:
        """The margin in use: growing during warm-up in training; always the full one in eval mode, so
        validation losses of different epochs (and ``best.pt``'s min-validation-loss choice) compare."""
        if self.margin_warmup_steps <= 0 or not self.training:
            return self.margin_rad
        return self.margin_rad * min(1.0, float(self.steps) / self.margin_warmup_steps)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.centres, dim=1)).clamp(-1, 1)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosines(embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosines(embeddings.float())
        m = self.current_margin()
        if self.training and torch.is_grad_enabled():
            self.steps += 1
        target = cos.gather(1, labels[:, None])
        sin = (1.0 - target**2).clamp_min(0).sqrt()
        shifted = target * math.cos(m) - sin * math.sin(m)
        shifted = torch.where(target > math.cos(math.pi - m), shifted, target - m * math.sin(m))
        logits = cos.scatter(1, labels[:, None], shifted.to(cos.dtype)) * self.scale
        return F.cross_entropy(logits, labels)


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all rows (numerically safe at zero). Built from the Gram matrix:
    N x N memory, not N x N x D (a 9,002-image validation set would need 166 GB)."""
    norms = embeddings.pow(2).sum(1)
    sq = (norms[:, None] + norms[None, :] - 2 * embeddings @ embeddings.T).clamp(min=0)
    sq = sq * ~torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)  # exactly 0 to itself
    return (sq + 1e-12).sqrt() * (sq > 0)


@register_loss("triplet")
class TripletLoss(nn.Module):
    """Triplet loss with online mining over a P x K batch (Schroff 2015; Hermans 2017).

    ``mining="batch_hard"``: for each anchor, its farthest positive and nearest negative.
    ``mining="semi_hard"``: every positive pair, with the nearest negative farther than the positive
    (FaceNet's rule; the hardest negative when none is). Distances are Euclidean between unit vectors.
    """

    has_centres, centres_key, sampler, weight_decay = False, None, "pk", True
    training_defaults = {"LR": 0.05}  # facecore.core.settings names: half CE's peak rate

    def __init__(self, margin: float = 0.2, mining: str = "batch_hard", **_: Any):
        super().__init__()
        if mining not in ("batch_hard", "semi_hard"):
            raise ValueError(f"unknown mining {mining!r}; choose 'batch_hard' or 'semi_hard'")
        self.margin, self.mining = margin, mining

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(embeddings.float())
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos_mask, neg_mask = same & ~eye, ~same
        if not pos_mask.any() or not neg_mask.any():
            return embeddings.sum() * 0.0
        big = d.max().detach() + 1.0
        if self.mining == "batch_hard":
            hardest_pos = (d * pos_mask).max(1).values
            hardest_neg = (d + big * ~neg_mask).min(1).values
            valid = pos_mask.any(1) & neg_mask.any(1)
            return F.relu(hardest_pos - hardest_neg + self.margin)[valid].mean()
        a, p = pos_mask.nonzero(as_tuple=True)
        d_ap = d[a, p]
        d_an = d[a]  # (n_pairs, B)
        farther = neg_mask[a] & (d_an > d_ap[:, None])
        semi = (d_an + big * ~farther).min(1).values
        hardest = (d_an + big * ~neg_mask[a]).min(1).values
        d_neg = torch.where(farther.any(1), semi, hardest)
        return F.relu(d_ap - d_neg + self.margin).mean()


@register_loss("distill")
class DistillLoss(nn.Module):
    """Pull the student's embeddings to a teacher's (knowledge distillation), plus a margin loss on the
    labelled faces of the batch.

    ``labels`` is (N, 1 + teacher_dim): the identity (-1: an unlabelled face) and the teacher's unit
    embedding of the same crop; ``distill_targets`` builds it. Terms:

    - ``1 - cos(W e, t)``: the student's embedding ``e`` through a learnt linear map ``W`` (to the
      teacher's size) against the teacher's ``t``;
    - ``pair_weight`` x the mean squared difference of the batch's cosine matrices, the student's own
      (``e e^T``) against the teacher's (``t t^T``), off the diagonal: the similarity structure that
      verification uses, transferred directly;
    - ``margin_weight`` x ArcFace (``scale``, ``margin_rad``) on the labelled rows; 0: distillation alone.
    """

    has_centres, centres_key, sampler, weight_decay = True, "margin.centres", "shuffled", False

    def __init__(self, embedding_dim: int, num_classes: int, teacher_dim: int = 128, pair_weight: float = 0.0,
                 margin_weight: float = 1.0, scale: float = 32.0, margin_rad: float = 0.5, margin_warmup_steps: int = 0):
        super().__init__()
        self.project = nn.Linear(embedding_dim, teacher_dim, bias=False)
        self.margin = ArcFaceLoss(embedding_dim, max(num_classes, 1), scale, margin_rad, margin_warmup_steps)
        self.teacher_dim, self.pair_weight, self.margin_weight = teacher_dim, pair_weight, margin_weight

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.margin.logits(embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim != 2 or labels.shape[1] != 1 + self.teacher_dim:
            raise ValueError(f"distill loss: labels must be (N, 1 + {self.teacher_dim}) (identity, teacher embedding), "
                             f"got {tuple(labels.shape)}; build them with distill_targets")
        e = embeddings.float()
        ids, t = labels[:, 0].long(), labels[:, 1:].float()
        loss = (1.0 - F.cosine_similarity(self.project(e), t, dim=1)).mean()
        if self.pair_weight > 0 and len(e) > 1:
            u = F.normalize(e, dim=1)
            off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
            loss = loss + self.pair_weight * ((u @ u.T - t @ t.T)[off] ** 2).mean()
        lab = ids >= 0
        if self.margin_weight > 0 and lab.any():
            loss = loss + self.margin_weight * self.margin(e[lab], ids[lab])
        return loss


def distill_targets(labels: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The labels of ``DistillLoss``: identities (N,) (-1: unlabelled) beside teacher embeddings (N, D)."""
    return torch.cat([labels.float()[:, None], teacher.float()], dim=1)
