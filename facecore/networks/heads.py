"""Teacher-space heads: a small map from a distilled student's embedding to its teacher's own embedding.

The distill loss pulls the student towards the teacher's *centred* targets (``distill.center_targets``),
which drops how far each face sits from the teacher's mean face; centring alone costs dlib about a point
on LFW. A head fitted afterwards on the frozen student, from its embedding of every training crop to the
teacher's raw unit embedding (cosine loss), gives that back: the shipped student then embeds into the
teacher's space (128-d for dlib). A checkpoint with a head stores its weights under ``teacher_head.``
(``PREFIX``) and ``meta["head"]`` (kind, sizes); ``meta["embedding_dim"]`` is the head's output size.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.registry import Registry
from ..core.runtime import progress_bar

PREFIX = "teacher_head."  # not "head.": EfficientNetEmbedder's own embedding layers live there
_HEADS = Registry("head", add_with="facecore.networks.heads.register_head")
register_head = _HEADS.register
head_names = _HEADS.names
register_head("linear", lambda in_dim, out_dim, hidden=0: nn.Linear(in_dim, out_dim))
register_head("mlp", lambda in_dim, out_dim, hidden=512: nn.Sequential(
    nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, out_dim)))


def create_head(kind: str, in_dim: int, out_dim: int, hidden: int = 512) -> nn.Module:
    """A fresh head by name: ``linear`` (with bias) or ``mlp`` (one hidden layer of ``hidden``)."""
    return _HEADS.lookup(kind)(in_dim, out_dim, hidden)


class HeadedModel(nn.Module):
    """A backbone (unit embeddings) followed by a head; returns the head's unit embeddings."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.teacher_head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.teacher_head(self.backbone(x).float()), dim=1)


def backbone_dim(meta: dict) -> int:
    """The backbone's embedding size of a checkpoint (with a head: the head's input)."""
    return int(meta["head"]["in_dim"]) if meta.get("head") else int(meta["embedding_dim"])


def split_state(state_dict: dict) -> tuple[dict, dict]:
    """(backbone weights, head weights without their ``PREFIX``) of a checkpoint's state dict."""
    head = {k[len(PREFIX):]: v for k, v in state_dict.items() if k.startswith(PREFIX)}
    return {k: v for k, v in state_dict.items() if not k.startswith(PREFIX)}, head


def head_from_meta(meta: dict) -> nn.Module:
    h = meta["head"]
    return create_head(h["kind"], int(h["in_dim"]), int(h["out_dim"]), int(h.get("hidden", 0) or 512))


def fit_head(features: np.ndarray, targets: np.ndarray, kind: str = "linear", hidden: int = 512, epochs: int = 12,
             lr: float = 2e-3, batch_size: int = 512, seed: int = 0, progress: bool = True) -> nn.Module:
    """A head mapping ``features`` (N, D_in) to the unit ``targets`` (N, D_out) by cosine loss (AdamW,
    one-cycle schedule), with the inputs' standardisation folded into its first layer. Rows with a
    non-finite target are left out."""
    ok = np.isfinite(targets).all(axis=1) & np.isfinite(features).all(axis=1)
    if ok.sum() < 2:
        raise ValueError(f"fit_head: {int(ok.sum())} usable rows of {len(ok)}; need embedded crops with teacher targets")
    x = torch.as_tensor(features[ok], dtype=torch.float32)
    t = torch.as_tensor(targets[ok], dtype=torch.float32)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = create_head(kind, x.shape[1], t.shape[1], hidden)
    opt = torch.optim.AdamW(head.parameters(), lr / 2, weight_decay=1e-4)
    per_epoch = max(1, len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * per_epoch)
    head.train()
    bar = progress_bar(range(epochs), desc="head", disable=not progress)
    for _ in bar:
        perm = torch.randperm(len(x), generator=gen)
        for b in range(per_epoch):
            j = perm[b * batch_size:(b + 1) * batch_size]
            loss = (1 - F.cosine_similarity(head((x[j] - mu) / sd), t[j], dim=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    head.eval()
    first = head if isinstance(head, nn.Linear) else head[0]
    with torch.no_grad():  # head((x - mu) / sd) == head'(x): scale the first layer's columns, shift its bias
        first.bias -= first.weight @ (mu / sd)
        first.weight /= sd
    return head
