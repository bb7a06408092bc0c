"""Per-epoch validation for the training loop: classification, pair verification and LFW (the ``lfw``
protocol's figures, ``facecore.evaluation.protocols.pair_result``, on a model in training)."""
from __future__ import annotations

import os
from functools import lru_cache

import cv2
import numpy as np
import torch

from ..core.preprocessing import cache_crop_size
from ..evaluation.lfw import lfw_protocol
from ..evaluation.metrics import best_threshold
from ..evaluation.protocols import pair_result
from .data import to_tensor


def evaluate_classifier(loss_fn, emb: torch.Tensor, labels: torch.Tensor) -> dict:
    """Validation loss and top-1 accuracy of a loss with class centres (``labels``: what the loss takes;
    identities in the first column when it takes more, as ``distill`` does)."""
    was_training = loss_fn.training
    loss_fn.eval()  # e.g. ArcFace validates with its full margin, also during the margin warm-up
    try:
        with torch.inference_mode():
            loss = float(loss_fn(emb, labels))
            ids = labels if labels.ndim == 1 else labels[:, 0].long()
            acc = float((loss_fn.logits(emb).argmax(1) == ids).float().mean())
    finally:
        loss_fn.train(was_training)
    return {"val_loss": loss, "val_acc": acc}


def evaluate_pairs(emb: np.ndarray, labels: np.ndarray, max_pairs: int = 20000, seed: int = 0) -> float:
    """Best-threshold verification accuracy on balanced same/different pairs of the validation set.

    Same-identity pairs are enumerated (random draws rarely find one when most identities have a
    single validation image, as with 5 photos each), up to ``max_pairs // 2``, and as many
    different-identity pairs are drawn. NaN when no identity has two validation images."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    pos = _same_pairs(labels)
    if len(pos) == 0:
        return float("nan")
    if len(pos) > max_pairs // 2:
        pos = pos[rng.choice(len(pos), max_pairs // 2, replace=False)]
    neg = np.zeros((0, 2), np.int64)
    while len(neg) < len(pos):
        i, j = rng.integers(0, len(labels), (2, 2 * len(pos)))
        neg = np.concatenate([neg, np.stack([i, j], 1)[labels[i] != labels[j]]])
    pairs = np.concatenate([pos, neg[: len(pos)]])
    truth = np.arange(len(pairs)) < len(pos)

    return best_threshold((emb[pairs[:, 0]] * emb[pairs[:, 1]]).sum(1), truth)[1]


def _same_pairs(labels: np.ndarray) -> np.ndarray:
    """(P, 2) index pairs i < j of equal labels."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    out = [np.array([(g[a], g[b]) for a in range(len(g)) for b in range(a + 1, len(g))], np.int64)
           for g in np.split(order, bounds) if len(g) >= 2]
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


@lru_cache(maxsize=2)
def _lfw_crops(files: tuple[str, ...], size: int) -> np.ndarray:
    out = np.zeros((len(files), size, size, 3), np.uint8)
    for i, p in enumerate(files):
        img = cv2.imread(p, cv2.IMREAD_COLOR) if os.path.exists(p) else None
        if img is not None:
            out[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[..., ::-1]
    return out


def lfw_eval(model: torch.nn.Module, lfw_dir: str, input_size: int, device: str = "cpu",
             pairs_path: str | None = None, flip: bool = False) -> dict:
    """LFW 10-fold accuracy (mean, std) of a model on aligned LFW crops (``align_folder`` output).

    Crops are decoded once per process. ``flip`` adds mirrored-crop embeddings (the shipped
    models' final figures use it; per-epoch checks skip it for speed). The figures are the ``lfw``
    protocol's (``facecore.evaluation.protocols.pair_result``); only the embedding is this loop's own, fast path
    for a model in training."""
    files, (i1, i2, issame, folds) = lfw_protocol(str(lfw_dir), pairs_path)
    crops = _lfw_crops(tuple(files), cache_crop_size(input_size))
    emb = []
    with torch.inference_mode():
        for s in range(0, len(crops), 256):
            x = to_tensor(crops[s:s + 256], input_size).to(device)
            e = model(x)
            if flip:
                e = e + model(torch.flip(x, dims=[3]))
            emb.append(torch.nn.functional.normalize(e.float(), dim=1).cpu().numpy())
    emb = np.concatenate(emb)
    res = pair_result(emb, i1, i2, issame, folds)
    return {"lfw_acc": float(res["mean"]), "lfw_std": float(res["std"]), "lfw_spread": float(res["spread"])}
