"""Start a training run from a trained model ("fine-tuning") instead of random weights."""
from __future__ import annotations

import os

import torch

from .models import float_state_dict, read_checkpoint


def warm_start(model: torch.nn.Module, loss_fn: torch.nn.Module, path: str | os.PathLike, arch: str,
               embedding_dim: int, classes: list[str]) -> str:
    """Load the backbone of checkpoint ``path`` into ``model``; seed the loss's class centres from it.

    The checkpoint may be a shipped model or a run's ``last.pt``. When the latter holds a classifier
    over the same class list, the new loss starts from those class directions (a CE ``fc.weight``
    becomes ArcFace's ``centres`` and vice versa); otherwise the loss keeps its fresh initialisation.
    Returns a one-line description of what was loaded.
    """
    blob = read_checkpoint(path)
    meta = blob["meta"]
    if meta["arch"] != arch or int(meta["embedding_dim"]) != int(embedding_dim):
        raise ValueError(f"init_from {path}: it is a {meta['arch']} with {meta['embedding_dim']}-d embeddings, "
                         f"but this run trains a {arch} with {embedding_dim}-d ones; pick a matching checkpoint")
    model.load_state_dict(float_state_dict(blob["state_dict"]))
    source = blob.get("loss_state") or {}
    weights = source.get("centres", source.get("fc.weight"))
    target = loss_fn.state_dict()
    key = "centres" if "centres" in target else "fc.weight" if "fc.weight" in target else None
    if key is None:
        return f"backbone from {path} (this loss has no class centres)"
    if weights is None or list(meta.get("classes", [])) != list(classes):
        return f"backbone from {path}; class centres start fresh (no classifier over the same classes there)"
    loss_fn.load_state_dict({**target, key: weights.float()})
    return f"backbone and class centres from {path}"
