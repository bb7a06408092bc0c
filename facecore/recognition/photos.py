"""Photos, not video: the one face of a photo embedded, and two photos compared (``Recognizer.verify``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.runtime import autocast
from ..detection.faces import AlignedFace, detect_align
from ..networks.models import Embedder


@dataclass
class Verification:
    """Two photos compared: the cosine similarity of their faces, and whether it reaches ``threshold``."""

    similarity: float
    same: bool
    threshold: float
    box_a: np.ndarray  # the face compared in each photo, in its pixels (x1, y1, x2, y2)
    box_b: np.ndarray


def photo_face(rgb: np.ndarray, detector, embedder: Embedder, flip: bool = True, bf16: bool = False,
               param: str = "image") -> tuple[np.ndarray, AlignedFace]:
    """(unit embedding, face) of the photo's centre-largest face; ValueError naming ``param`` when
    the photo has none."""
    faces = detect_align([rgb], detector, embedder.align_size)[0]
    if not faces:
        raise ValueError(f"{param}: no face found in the photo ({rgb.shape[1]}x{rgb.shape[0]} px)")
    with autocast("cpu", bf16):
        emb = embedder.embed(faces[0].crop[None], flip=flip)[0]
    return np.asarray(emb, np.float32), faces[0]


def verification(a: tuple[np.ndarray, AlignedFace], b: tuple[np.ndarray, AlignedFace], threshold: float) -> Verification:
    """Compare two ``photo_face`` results at ``threshold``."""
    sim = float(np.dot(a[0], b[0]))
    return Verification(sim, sim >= threshold, float(threshold), a[1].box.copy(), b[1].box.copy())
