"""Project configuration: the shipped models by name, and where data lives.

``params`` maps a model name to its checkpoint (path relative to the project root). Every name here
can be passed to ``realtime.py --model_name`` and is evaluated by ``notebooks/id-rate.ipynb``.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent

# name -> checkpoint path (fp16 state dicts written by the training notebooks)
params: dict[str, str] = {
    "ce-efficientnet": "notebooks/ce-loss/ce-efficientnet.pt",
    "arcface-efficientnet": "notebooks/arcface-loss/arcface-efficientnet.pt",
    "triplet-efficientnet-min-val-loss": "notebooks/triplet-loss/triplet-efficientnet-min-val-loss.pt",
    "triplet-efficientnet-last-epoch": "notebooks/triplet-loss/triplet-efficientnet-last-epoch.pt",
    "ce-inceptionresnetv1-min10": "notebooks/ce-loss/ce-inceptionresnetv1-min10.pt",
    "ce-inceptionresnetv1-min20": "notebooks/ce-loss/ce-inceptionresnetv1-min20.pt",
}

# The model realtime.py uses when --model_name is not given: the best shipped model, with the highest
# LFW accuracy (90.07 %) and identification rate at every FPR (README, "Evaluation": TPR@FPR=1e-3
# 0.417 against 0.297 for ce-inceptionresnetv1-min20 and <= 0.216 for the EfficientNets).
DEFAULT_MODEL: str | None = "ce-inceptionresnetv1-min10"


def checkpoint_path(name: str) -> Path:
    """Absolute checkpoint path of a shipped model; an unknown name lists the valid ones."""
    if name not in params:
        valid = ", ".join(sorted(params)) or "(none shipped yet)"
        raise KeyError(f"unknown model name {name!r}; valid names: {valid}")
    return ROOT / params[name]
