"""facecore's own 5-point landmarker: a small heatmap CNN with soft-argmax, trained on 300-W.

``load_default_landmarker()`` returns the callable that ``align_folder(..., landmarks="custom")``
uses: ``(image, boxes from MTCNN) -> (N, 5, 2)`` image-pixel landmarks (left eye, right eye, nose,
left and right mouth corner, OpenCV pixel centres). The model sees the box grown by a margin into a
square crop; each point is the expectation of a softmax heatmap (translation-equivariant, so it
learns where the eyes are rather than where they are on average).

Aligning a folder (e.g. LFW) with it, end to end::

    from facecore.detection.folder import align_folder
    from facecore.core.paths import data_path
    manifest = align_folder(data_path("lfw", "lfw-deepfunneled"), "runs/lfw-aligned-custom", landmarks="custom")

``notebooks/my-face-alignment.ipynb`` trains the model and measures it on HELEN-test.
"""
from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..core.checkpoint import load_weights, verify_zip
from ..core.files import atomic_write_bytes
from ..core.paths import PROJECT_ROOT
from ..core.registry import Registry
from ..core.runtime import progress_bar
from .landmarks_data import FLIP_ORDER, crop_matrix, invert_matrix, map_points, to_tensor, warp_crop

LANDMARKER_FORMAT = "facecore-landmarker-v1"
DEFAULT_WEIGHTS = Path("notebooks") / "my-face-alignment" / "landmarker.pt"


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Res(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(_conv(ch, ch), nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class HeatmapLandmarker(nn.Module):
    """Crops (N, 3, S, S) in [-1, 1] -> (N, K, 2) points in crop units (crop pixel / S).

    Stride-4 heatmaps from a small U-shaped CNN (context down to stride 16), decoded by soft-argmax.
    """

    def __init__(self, n_points: int = 5, width: int = 32):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, w))                        # /2
        self.down4 = nn.Sequential(_conv(w, 2 * w, 2), _Res(2 * w), _Res(2 * w))       # /4
        self.down8 = nn.Sequential(_conv(2 * w, 3 * w, 2), _Res(3 * w), _Res(3 * w))   # /8
        self.down16 = nn.Sequential(_conv(3 * w, 4 * w, 2), _Res(4 * w))               # /16
        self.lat16, self.lat8 = nn.Conv2d(4 * w, 3 * w, 1), nn.Conv2d(3 * w, 2 * w, 1)
        self.head = nn.Sequential(_Res(2 * w), nn.Conv2d(2 * w, n_points, 1))
        self.n_points = n_points

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.down4(self.stem(x))
        f8 = self.down8(f4)
        f16 = self.down16(f8)
        f8 = f8 + F.interpolate(self.lat16(f16), size=f8.shape[-2:], mode="bilinear", align_corners=False)
        f4 = f4 + F.interpolate(self.lat8(f8), size=f4.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(f4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_argmax(self.heatmaps(x), x.shape[-1])


def soft_argmax(logits: torch.Tensor, size: int) -> torch.Tensor:
    """(N, K, h, w) heatmap logits of a ``size`` crop -> (N, K, 2) expected points in crop units."""
    n, k, h, w = logits.shape
    prob = logits.float().flatten(2).softmax(-1).view(n, k, h, w)
    sx, sy = size / w, size / h  # cell j covers crop pixels [sx*j, sx*(j+1)): centre sx*j + (sx-1)/2
    xs = (torch.arange(w, device=logits.device) * sx + (sx - 1) / 2) / size
    ys = (torch.arange(h, device=logits.device) * sy + (sy - 1) / 2) / size
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)


_MODELS = Registry("landmark model", add_with="facecore.detection.landmarks.register_landmark_model")
register_landmark_model = _MODELS.register
register_landmark_model("heatmap-s", lambda: HeatmapLandmarker(5, 24))
register_landmark_model("heatmap-m", lambda: HeatmapLandmarker(5, 32))


def create_landmark_model(name: str) -> nn.Module:
    """A randomly initialised 5-point landmark model by name."""
    return _MODELS.lookup(name)()


# -- loss and metrics ------------------------------------------------------------------------

def landmark_loss(name: str = "wing") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(pred, target) -> scalar`` on (N, 5, 2) points: each point's distance divided by the
    target's inter-ocular distance, through ``wing`` (Feng et al. 2018; w=0.1, eps=0.02 IOD) or ``l1``."""
    def errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        iod = (target[:, 1] - target[:, 0]).norm(dim=-1, keepdim=True).clamp_min(1e-3)
        return ((pred - target).pow(2).sum(-1) + 1e-9).sqrt() / iod

    def wing(pred: torch.Tensor, target: torch.Tensor, w: float = 0.1, eps: float = 0.02) -> torch.Tensor:
        e = errors(pred, target)
        c = w - w * math.log(1 + w / eps)
        return torch.where(e < w, w * torch.log1p(e / eps), e - c).mean()

    losses = {"wing": wing, "l1": lambda p, t: errors(p, t).mean()}
    if name not in losses:
        raise ValueError(f"unknown landmark loss {name!r}; valid names: {', '.join(sorted(losses))}")
    return losses[name]


def nme(pred: np.ndarray, gt: np.ndarray, points: slice = slice(0, 2)) -> np.ndarray:
    """Per face: mean distance of the chosen points (default: the two eye centres) from the truth,
    divided by the inter-ocular distance (between the true eye centres). (N, K, 2) inputs."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    iod = np.linalg.norm(gt[:, 1] - gt[:, 0], axis=-1)
    return np.linalg.norm(pred[:, points] - gt[:, points], axis=-1).mean(-1) / iod


def match_boxes(boxes: list[np.ndarray], points5: np.ndarray) -> np.ndarray:
    """For each image, the index of the box holding both true eyes, nearest their midpoint (-1: none)."""
    out = np.full(len(boxes), -1, np.int64)
    for i, (b, p) in enumerate(zip(boxes, np.asarray(points5))):
        b = np.asarray(b).reshape(-1, 4)
        inside = np.all((b[:, None, :2] <= p[None, :2]) & (p[None, :2] <= b[:, None, 2:]), axis=(1, 2))
        if inside.any():
            d = np.linalg.norm((b[:, :2] + b[:, 2:]) / 2 - p[:2].mean(0), axis=1)
            out[i] = int(np.argmin(np.where(inside, d, np.inf)))
    return out


# -- training --------------------------------------------------------------------------------

def train_landmarker(model: nn.Module, dataset, epochs: int, batch_size: int = 64, lr: float = 3e-3,
                     weight_decay: float = 1e-4, loss: str = "wing", state_path: str | os.PathLike | None = None,
                     device: str = "cpu", seed: int = 0, progress: bool = True) -> list[dict]:
    """Train with AdamW, linear warm-up then cosine decay per step; returns per-epoch history.

    With ``state_path`` the model, optimiser and history are saved atomically after each epoch and
    a rerun resumes from there (a finished run returns at once).
    """
    torch.manual_seed(seed)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, drop_last=True,
                        num_workers=0, generator=torch.Generator().manual_seed(seed))
    total = epochs * len(loader)
    warmup = min(100, max(1, total // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    history: list[dict] = []
    if state_path is not None and Path(state_path).exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        history = list(state["history"])
    criterion = landmark_loss(loss)
    bar = progress_bar(total=total, initial=len(history) * len(loader), desc="train landmarker", disable=not progress)
    for epoch in range(len(history), epochs):
        model.train()
        t0, losses = time.time(), []
        for x, y in loader:
            x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
            value = criterion(model(x), y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            losses.append(value.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-20:]):.4f}")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "first_batch_loss": losses[0],
                        "last_batch_loss": losses[-1], "lr": float(opt.param_groups[0]["lr"]),
                        "seconds": time.time() - t0})
        if state_path is not None:
            _save_blob(state_path, {"model": model.state_dict(), "opt": opt.state_dict(),
                                    "sched": sched.state_dict(), "history": history})
    bar.close()
    model.eval()
    return history


def mean_points(dataset) -> np.ndarray:
    """The (5, 2) average target of a dataset, in crop units: the 'always the mean' predictor."""
    return np.mean([dataset[i][1].numpy() for i in range(len(dataset))], axis=0)


# -- inference -------------------------------------------------------------------------------

class Landmarker:
    """``(image HxWx3 uint8 RGB, boxes (N, 4)) -> (N, 5, 2)`` image-pixel landmarks from a model.

    ``flip`` averages each crop's prediction with its mirror's (labels swapped back).
    """

    name = "custom"

    def __init__(self, model: nn.Module | None, meta: dict, device: str = "cpu", flip: bool = True):
        self.model = model.to(device).eval() if model is not None else None
        self.meta, self.device, self.flip = meta, device, flip
        self.size, self.margin = int(meta["input_size"]), float(meta["margin"])

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crops (N, S, S, 3) of the boxes and their (N, 2, 3) image-to-crop matrices."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"Landmarker: expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
        ms = np.array([crop_matrix(b, self.size, self.margin) for b in np.asarray(boxes, np.float64).reshape(-1, 4)])
        crops = np.array([warp_crop(image, m, self.size) for m in ms]).reshape(-1, self.size, self.size, 3)
        return crops, ms.reshape(-1, 2, 3)

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, 5, 2) points in crop pixels."""
        x = to_tensor(crops).to(self.device).contiguous(memory_format=torch.channels_last)
        p = self.model(x).float().cpu().numpy()
        if self.flip:
            q = self.model(torch.flip(x, dims=[3])).float().cpu().numpy()[:, list(FLIP_ORDER)]
            q[..., 0] = (self.size - 1) / self.size - q[..., 0]
            p = (p + q) / 2
        return p * self.size

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        crops, ms = self.crops(image, boxes)
        if len(crops) == 0:
            return np.zeros((0, 5, 2), np.float32)
        pts = self.predict_crops(crops)
        return np.stack([map_points(invert_matrix(m), p) for m, p in zip(ms, pts)]).astype(np.float32)


class MeanLandmarker(Landmarker):
    """The failure mode: the same points (training mean, crop units) for every face."""

    name = "mean"

    def __init__(self, points: np.ndarray, input_size: int, margin: float):
        super().__init__(None, {"input_size": input_size, "margin": margin})
        self.points = np.asarray(points, np.float64).reshape(5, 2)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        return np.repeat(self.points[None] * self.size, len(crops), axis=0)


def landmarker_meta(arch: str, input_size: int, margin: float, mean: np.ndarray | None = None,
                    config: dict | None = None, metrics: dict | None = None) -> dict:
    """The description stored beside the weights (plain types: loads with ``weights_only=True``)."""
    return {"format": LANDMARKER_FORMAT, "arch": arch, "input_size": int(input_size), "margin": float(margin),
            "points": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
            "mean_points": [] if mean is None else np.asarray(mean, float).tolist(),
            "config": dict(config or {}), "metrics": dict(metrics or {})}


def save_landmarker(path: str | os.PathLike, model: nn.Module, meta: dict) -> None:
    """Write fp16 weights + meta atomically."""
    sd = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _save_blob(path, {"meta": meta, "state_dict": sd})


def load_landmarker(path: str | os.PathLike, device: str = "cpu", flip: bool = True) -> Landmarker:
    """Rebuild the model a landmarker file describes and return its callable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"landmark model {path} not found: run notebooks/my-face-alignment.ipynb "
                                f"(it trains the model and writes this file)")
    verify_zip(path)  # a flipped byte is an error, not silently different landmarks
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("meta", {}).get("format") != LANDMARKER_FORMAT:
        raise ValueError(f"{path} is not a facecore landmarker (no meta.format == {LANDMARKER_FORMAT!r})")
    model = create_landmark_model(blob["meta"]["arch"])
    load_weights(model, blob["state_dict"], path)
    return Landmarker(model.to(memory_format=torch.channels_last), blob["meta"], device, flip)


def default_landmarker_path() -> Path:
    return PROJECT_ROOT / DEFAULT_WEIGHTS


def load_default_landmarker(device: str = "cpu") -> Landmarker:
    """The shipped landmarker (``notebooks/my-face-alignment/landmarker.pt``), ``name == "custom"``."""
    return load_landmarker(default_landmarker_path(), device=device)


def _save_blob(path: str | os.PathLike, blob: dict) -> None:
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def evaluate_landmarks(faces, detections, predictors: dict[str, Callable]) -> dict:
    """Eye NME (and 5-point NME) of MTCNN's landmarks and of each ``(image, boxes) -> points``
    predictor on MTCNN's box of each annotated face; faces without a matching box are MTCNN misses."""
    gt = np.array([f.points5 for f in faces]).reshape(-1, 5, 2)
    match = match_boxes([d.boxes for d in detections], gt)
    used = np.nonzero(match >= 0)[0]
    preds = {"mtcnn": np.array([detections[i].landmarks[match[i]] for i in used]).reshape(-1, 5, 2)}
    for name, fn in predictors.items():
        preds[name] = np.array([fn(faces[i].image, detections[i].boxes[match[i]][None])[0] for i in used]).reshape(-1, 5, 2)
    per_face = {k: nme(p, gt[used]) for k, p in preds.items()}
    return {"n_test_faces": len(faces), "n_used": len(used), "mtcnn_misses": int(len(faces) - len(used)),
            "nme_eyes": {k: float(v.mean()) for k, v in per_face.items()},
            "nme_eyes_median": {k: float(np.median(v)) for k, v in per_face.items()},
            "nme_5pt": {k: float(nme(p, gt[used], slice(0, 5)).mean()) for k, p in preds.items()},
            "per_face": per_face, "preds": preds, "gt": gt[used], "index": used}
