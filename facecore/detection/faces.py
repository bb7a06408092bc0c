"""Detect -> align: the one path from photos to aligned face crops (datasets, evaluation, realtime)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .align import warp_face
from .detect import Detection, select_face
from .detectors import create_detector

# A landmarker replaces MTCNN's 5 points: (image, boxes (N, 4)) -> landmarks (N, 5, 2).
Landmarker = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _Detects(Protocol):
    def detect(self, images: list[np.ndarray]) -> list[Detection]: ...


@dataclass
class AlignedFace:
    """One detected face: its aligned crop and where it was found."""

    crop: np.ndarray
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    n_faces: int = 1
    padded: bool = False  # found only by the detector's retry on the padded image


def detect_align(images: list[np.ndarray], detector: _Detects, size: int = 112,
                 select: str = "center_largest", landmarker: Landmarker | None = None) -> list[list[AlignedFace]]:
    """Detect faces in each RGB image and return aligned crops, per image.

    ``select="all"`` keeps every face (best score first); any rule of ``select_face`` keeps one.
    Landmarks are rounded to 0.01 px, so that results do not depend on batch composition.
    """
    dets = detector.detect(images)
    out: list[list[AlignedFace]] = []
    for img, det in zip(images, dets):
        if len(det) == 0:
            out.append([])
            continue
        idx = list(range(len(det))) if select == "all" else [select_face(det, img.shape[:2], select)]
        boxes = det.boxes[idx]
        lms = det.landmarks[idx] if landmarker is None else np.asarray(landmarker(img, boxes), np.float32)
        lms = np.round(lms.astype(np.float64), 2)
        faces = [AlignedFace(warp_face(img, lm, size), np.round(b.astype(np.float64), 2), float(det.scores[i]), lm, len(det),
                              bool(getattr(det, "padded", False)))
                 for i, b, lm in zip(idx, boxes, lms)]
        out.append(faces)
    return out


def default_detector(device: str = "cpu", **kwargs):
    """MTCNN with facecore's defaults (``facecore.detection.detectors.create_detector("mtcnn", ...)``)."""
    return create_detector("mtcnn", device=device, **kwargs)
