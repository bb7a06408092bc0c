"""Embedding networks by name, and self-describing checkpoints.

``create_model("efficientnet-b0", embedding_dim=512)`` returns a module mapping a normalised
``(N, 3, S, S)`` batch to L2-normalised ``(N, D)`` embeddings. A checkpoint stores the weights and
everything needed to use them (architecture, embedding size, input size, normalisation, alignment
template, classes, training config, metrics), and loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .align import template
from .files import atomic_write_bytes

CHECKPOINT_FORMAT = "facecore-checkpoint-v1"
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # (x/255 - 0.5) / 0.5, as facenet-pytorch does
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, embedding_dim: int = 512, **kwargs: Any) -> nn.Module:
    """A randomly initialised embedding network from the registry (no weights are downloaded)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[name](embedding_dim=embedding_dim, **kwargs)


class InceptionResnetV1Embedder(nn.Module):
    """facenet-pytorch's InceptionResnetV1 (random init) with an embedding head of any size."""

    min_input_size = 80

    def __init__(self, embedding_dim: int = 512, dropout: float = 0.2):
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

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
        from efficientnet_pytorch import EfficientNet

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
    """uint8 (N, H, W, 3) RGB aligned crops -> normalised float (N, 3, S, S) tensor."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255)
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


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
            x = preprocess(crops[i:i + batch_size], self.input_size, self.meta.get("mean", MEAN),
                           self.meta.get("std", STD)).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            e = self.model(x)
            if flip:
                e = e + self.model(torch.flip(x, dims=[3]))
            out.append(F.normalize(e.float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, int(self.meta.get("embedding_dim", 512))), np.float32)
        return np.concatenate(out).astype(np.float32)


def checkpoint_meta(arch: str, embedding_dim: int, input_size: int, classes: list[str] | None = None,
                    config: dict | None = None, metrics: dict | None = None, align_size: int = 112) -> dict:
    """The description stored beside the weights in every checkpoint."""
    return {"format": CHECKPOINT_FORMAT, "arch": arch, "embedding_dim": int(embedding_dim),
            "input_size": int(input_size), "align_size": int(align_size), "mean": list(MEAN), "std": list(STD),
            "template": template(align_size).tolist(), "classes": list(classes or []),
            "config": dict(config or {}), "metrics": dict(metrics or {})}


def round_mantissa(t: torch.Tensor, bits: int) -> torch.Tensor:
    """fp16 values rounded (to nearest, ties to even) to ``bits`` of fp16's 10 mantissa bits.

    The result is still an fp16 tensor; its zeroed low bits let the deflated checkpoint shrink (9 bits:
    about 6 % smaller, relative error <= 2**-10 on normal numbers, half an fp16 step more than fp16's own).
    """
    if t.dtype != torch.float16:
        raise TypeError(f"round_mantissa needs an fp16 tensor, got {t.dtype}")
    if not 1 <= bits <= 10:
        raise ValueError(f"mantissa bits must be in 1..10, got {bits}")
    drop = 10 - bits
    if drop == 0:
        return t
    u = t.view(torch.int16).to(torch.int32) & 0xFFFF  # the raw bit pattern, unsigned
    u = (u + (1 << (drop - 1)) - 1 + ((u >> drop) & 1)) & ~((1 << drop) - 1)  # sign-magnitude: carries are right
    r = (u - ((u >> 15) << 16)).to(torch.int16).view(torch.float16)
    return torch.where(torch.isfinite(t) & torch.isfinite(r), r, t)  # inf/nan stay, no value overflows to inf


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict, half: bool = False,
                    extra: dict | None = None, mantissa_bits: int = 10) -> None:
    """Write weights + meta atomically; ``half`` stores fp16 weights (for shipping), deflated, with
    ``mantissa_bits`` of fp16's 10 kept."""
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
          for k, v in _unwrap(model).state_dict().items()}
    if half and mantissa_bits != 10:
        sd = {k: round_mantissa(v, mantissa_bits) if v.dtype == torch.float16 else v for k, v in sd.items()}
    blob = {"meta": meta, "state_dict": sd, **(extra or {})}
    write_checkpoint(path, blob, compress=half)


def checkpoint_bytes(blob: dict, compress: bool = False) -> bytes:
    """``torch.save`` bytes of ``blob``; ``compress`` deflates the zip records (lossless, about 9 %
    smaller for fp16 weights; ``torch.load`` reads them as usual, only ``mmap=True`` needs stored ones)."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    if not compress:
        return buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():  # fixed timestamps: the same checkpoint always gives the same bytes
            dst.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), src.read(info.filename),
                         zipfile.ZIP_DEFLATED, 9)
    return out.getvalue()


def write_checkpoint(path: str | os.PathLike, blob: dict, compress: bool = False) -> None:
    """Write a checkpoint dict atomically (see ``checkpoint_bytes``)."""
    atomic_write_bytes(path, checkpoint_bytes(blob, compress))


def is_compressed(path: str | os.PathLike) -> bool:
    """Whether a checkpoint file's zip records are deflated."""
    with zipfile.ZipFile(path) as z:
        return any(i.compress_type != zipfile.ZIP_STORED for i in z.infolist())


def read_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable facecore checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(blob, dict) or blob.get("meta", {}).get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a facecore checkpoint (no meta.format == {CHECKPOINT_FORMAT!r})")
    return blob


def float_state_dict(state_dict: dict) -> dict:
    """A state dict with floating tensors as float32 (shipped weights are fp16)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}


def load_embedder(path: str | os.PathLike, device: str = "cpu") -> Embedder:
    """Rebuild the network a checkpoint describes, load its weights (as float32) and return it."""
    blob = read_checkpoint(path)
    meta = blob["meta"]
    model = create_model(meta["arch"], embedding_dim=meta["embedding_dim"])
    model.load_state_dict(float_state_dict(blob["state_dict"]))
    model = model.to(device, memory_format=torch.channels_last).eval()
    return Embedder(model, meta, device)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
