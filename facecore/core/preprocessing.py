"""The one image-to-tensor path: aligned uint8 crops -> the normalised float batch a network sees.

Training, validation, inference and the landmark network all call ``to_tensor``; the normalisation
comes from the checkpoint (``meta["mean"]``, ``meta["std"]``), defaulting to ``MEAN``/``STD``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # (x/255 - 0.5) / 0.5 = [-1, 1], as facenet-pytorch does
ALIGN_SIZE = 112  # side of the aligned crops on disk (ArcFace template)


def cache_crop_size(input_size: int) -> int:
    """Side of the decoded crops kept in memory for a network input of ``input_size``: the aligned
    112 px crops for inputs above 64 px, 72 px (cheaper to hold and resample) for smaller ones."""
    return ALIGN_SIZE if input_size > 64 else 72


def to_tensor(crops: np.ndarray, input_size: int | None = None, mean: Sequence[float] = MEAN,
              std: Sequence[float] = STD, channels_last: bool = False, device: str | None = None):
    """uint8 (N, H, W, 3) RGB crops -> float (N, 3, S, S): scaled to [0, 1], resized to ``input_size``
    (antialiased bilinear; None keeps the size), then ``(x - mean) / std``. ``device``: the uint8 crops
    go there first and the arithmetic runs there (a GPU's training batches travel as bytes)."""
    x = torch.from_numpy(np.ascontiguousarray(crops))
    x = (x.to(device, non_blocking=True) if device else x).permute(0, 3, 1, 2).float().div_(255)
    if input_size and (x.shape[-1] != input_size or x.shape[-2] != input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor(mean, device=x.device).view(1, 3, 1, 1)) / torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def meta_to_tensor(crops: np.ndarray, meta: dict, channels_last: bool = False):
    """``to_tensor`` with a checkpoint's input size and normalisation."""
    return to_tensor(crops, int(meta["input_size"]), meta.get("mean", MEAN), meta.get("std", STD), channels_last)
