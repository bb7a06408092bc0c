"""Start a training run from a trained model ("fine-tuning") instead of random weights."""
from __future__ import annotations

import os

import torch

from ..core.checkpoint import load_weights, read_checkpoint
from ..networks.heads import backbone_dim, split_state
from ..networks.losses import centres_keys, loss_class


def warm_start(model: torch.nn.Module, loss_fn: torch.nn.Module, path: str | os.PathLike, arch: str,
               embedding_dim: int, classes: list[str]) -> str:
    """Load the backbone of checkpoint ``path`` into ``model``; seed the loss's class centres from it.

    The checkpoint may be a shipped model or a run's ``last.pt``. When the latter holds a classifier
    over the same class list, the new loss starts from those class directions (each loss names its
    centres' key, ``centres_key``: a CE ``fc.weight`` becomes ArcFace's ``centres`` and vice versa);
    otherwise the loss keeps its fresh initialisation. Any other loss tensor of the same key and shape
    (the distill loss's learnt map) is carried over too. Returns a one-line description of what was loaded.
    """
    blob = read_checkpoint(path)
    meta = blob["meta"]
    dim = backbone_dim(meta)  # a student with a teacher-space head starts from its backbone; the head is refitted
    if meta["arch"] != arch or dim != int(embedding_dim):
        raise ValueError(f"init_from {path}: it is a {meta['arch']} with {dim}-d embeddings, "
                         f"but this run trains a {arch} with {embedding_dim}-d ones; pick a matching checkpoint")
    load_weights(model, split_state(blob["state_dict"])[0], path)
    loss_state = blob.get("loss_state") or {}
    key = getattr(loss_fn, "centres_key", None)
    own = _other_loss_tensors(loss_fn, loss_state, key)
    extra = f"; {', '.join(sorted(own))} from the same loss there" if own else ""
    weights = _source_centres(loss_state, meta.get("config", {}).get("loss")) if key else None
    if key and weights is not None and list(meta.get("classes", [])) == list(classes):
        own[key] = weights.float()
    if own:
        loss_fn.load_state_dict({**loss_fn.state_dict(), **own})
    if key is None:
        return f"backbone from {path} (this loss has no class centres){extra}"
    if key not in own:
        return f"backbone from {path}; class centres start fresh (no classifier over the same classes there){extra}"
    return f"backbone and class centres from {path}{extra}"


def _other_loss_tensors(loss_fn: torch.nn.Module, loss_state: dict, centres_key: str | None) -> dict:
    """The checkpoint's loss tensors other than class centres that this loss has under the same key and shape
    (e.g. the distill loss's learnt map to the teacher's size, when continuing a distillation)."""
    mine = loss_fn.state_dict()
    return {k: v.to(mine[k].dtype) for k, v in loss_state.items()
            if k != centres_key and k in mine and torch.is_tensor(v) and v.shape == mine[k].shape}


def _source_centres(loss_state: dict, loss_name: str | None) -> torch.Tensor | None:
    """The class centres in a run's loss state: under its own loss's key, else any registered loss's."""
    try:
        keys = [loss_class(loss_name).centres_key] if loss_name else []
    except ValueError:  # a loss that is no longer registered
        keys = []
    for k in [*keys, *sorted(centres_keys())]:
        if k is not None and k in loss_state:
            return loss_state[k]
    return None
