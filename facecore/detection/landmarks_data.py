"""68-point landmark data (iBUG 300-W ``.pts``): reading, the 5 alignment points, boxes and crops.

A training sample is made the way inference sees a face: a box around it (MTCNN's at inference; at
training one derived from the 68 points with MTCNN-like jitter), grown by a margin into a square,
rotated / scaled / shifted by the augmentation and resampled to ``size`` x ``size``. All points
use OpenCV's pixel-centre convention; 5-point order: left eye, right eye (as seen in the image),
nose tip, left and right mouth corner. The ``.pts`` coordinates are used as written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.files import load_rgb
from ..core.paths import data_path
from ..core.preprocessing import to_tensor as _to_tensor

N_POINTS = 68
LEFT_EYE, RIGHT_EYE, NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = slice(36, 42), slice(42, 48), 30, 48, 54
FLIP_ORDER = (1, 0, 2, 4, 3)  # the 5 points' new order after a horizontal flip (left <-> right)
TRAIN_FOLDERS, TEST_FOLDERS = ("afw", "helen_train"), ("helen_test",)
# MTCNN's box relative to the bounding box of the 68 points, as shares of that box's width and
# height: offsets of x1, y1, x2, y2 (mean, std), measured on 1,205 afw + helen_train faces.
MTCNN_BOX_OFFSET_MEAN = np.array([-0.012, -0.328, -0.040, -0.026])
MTCNN_BOX_OFFSET_STD = np.array([0.044, 0.078, 0.043, 0.047])


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """The (68, 2) float32 points of an iBUG ``.pts`` file; a malformed file raises naming it."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]

    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: not a valid 68-point .pts file ({why}); expected 'version: 1', "
                          f"'n_points: 68', '{{', 68 lines of 'x y', '}}'")

    if len(lines) < 3 or not lines[0].startswith("version"):
        raise bad("no 'version:' header")
    header = lines[1].replace(" ", "")
    if not header.startswith("n_points:"):
        raise bad("no 'n_points:' line")
    try:
        n = int(header.split(":", 1)[1])
    except ValueError:
        raise bad(f"unreadable point count {lines[1]!r}") from None
    if n != N_POINTS:
        raise bad(f"n_points is {n}, not {N_POINTS}")
    if lines[2] != "{" or "}" not in lines:
        raise bad("missing '{' or '}'")
    body = lines[3:lines.index("}")]
    if len(body) != n:
        raise bad(f"{len(body)} point lines between the braces, header says {n}")
    pts = np.zeros((n, 2), np.float32)
    for i, ln in enumerate(body):
        parts = ln.split()
        try:
            if len(parts) != 2:
                raise ValueError
            pts[i] = float(parts[0]), float(parts[1])
        except ValueError:
            raise bad(f"point line {i + 1} is {ln!r}, not two numbers") from None
    if not np.isfinite(pts).all():
        raise bad("non-finite coordinates")
    return pts


def five_points(pts68: np.ndarray) -> np.ndarray:
    """The (..., 5, 2) alignment points of (..., 68, 2) landmarks: eye centres, nose tip, mouth corners."""
    p = np.asarray(pts68, np.float64)
    return np.stack([p[..., LEFT_EYE, :].mean(-2), p[..., RIGHT_EYE, :].mean(-2), p[..., NOSE_TIP, :],
                     p[..., MOUTH_LEFT, :], p[..., MOUTH_RIGHT, :]], axis=-2)


@dataclass
class LandmarkFace:
    """One annotated face: its image, 68 points and the file it came from."""

    path: str
    image: np.ndarray
    points68: np.ndarray

    @property
    def points5(self) -> np.ndarray:
        return five_points(self.points68)


def load_landmark_folders(folders: tuple[str, ...] | list[str], root: str | os.PathLike | None = None,
                          limit: int | None = None) -> list[LandmarkFace]:
    """Every ``<name>.jpg`` + ``<name>.pts`` in the given folders of ``landmarks-300w`` (sorted).

    ``limit`` keeps an evenly spread subset of that many faces (for smoke runs).
    """
    base = Path(root) if root is not None else data_path("landmarks-300w")
    files = []
    for folder in folders:
        d = base / folder
        if not d.is_dir():
            raise FileNotFoundError(f"landmark folder {d} not found (expected one of afw, helen_train, helen_test)")
        files += sorted(d.glob("*.pts"))
    if limit is not None and limit < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    faces = []
    for pts_path in files:
        img_path = pts_path.with_suffix(".jpg")
        if not img_path.exists():
            raise FileNotFoundError(f"{pts_path} has no image beside it ({img_path.name})")
        loaded = load_rgb(img_path, max_side=None)
        if loaded.rgb is None:
            raise ValueError(f"{img_path}: unreadable image ({loaded.message})")
        faces.append(LandmarkFace(str(img_path), loaded.rgb, read_pts(pts_path)))
    return faces


def box_from_points(pts68: np.ndarray, rng: np.random.Generator | None = None, jitter: float = 1.0) -> np.ndarray:
    """An MTCNN-like ``[x1, y1, x2, y2]`` box for 68 points; with ``rng``, MTCNN's spread times ``jitter``."""
    p = np.asarray(pts68, np.float64)
    lo, hi = p.min(0), p.max(0)
    wh = np.concatenate([hi - lo, hi - lo])
    off = MTCNN_BOX_OFFSET_MEAN.copy()
    if rng is not None:
        off = off + jitter * MTCNN_BOX_OFFSET_STD * rng.standard_normal(4)
    return np.concatenate([lo, hi]) + off * wh


def crop_matrix(box: np.ndarray, size: int, margin: float, angle_deg: float = 0.0, scale: float = 1.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """2x3 matrix from image to crop pixels: the square of side ``max(w, h) * (1 + margin) / scale``
    around the box centre (moved by ``shift`` sides), turned by ``angle_deg`` (counter-clockwise on
    screen), onto a ``size`` crop."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin) / scale
    if not side > 0:
        raise ValueError(f"crop_matrix: degenerate box {box}")
    k = size / side
    a = np.deg2rad(angle_deg)
    # y points down, so a counter-clockwise turn on screen is R(-a) in array coordinates.
    rot = k * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2]) + np.asarray(shift) * side
    m = np.zeros((2, 3))
    m[:, :2] = rot
    m[:, 2] = (size - 1) / 2 - rot @ centre
    return m


def invert_matrix(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix."""
    a = np.linalg.inv(m[:, :2])
    return np.concatenate([a, -a @ m[:, 2:]], axis=1)


def map_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2x3 affine matrix."""
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def warp_crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop ``m`` describes (black outside the image), area-downscaled first
    when it shrinks the image by more than 1.5x, so that small crops do not alias."""
    k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if k < 1 / 1.5:
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * k * 1.25)), max(1, round(h * k * 1.25))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = nw / w, nh / h  # small = s * (x + 0.5) - 0.5
        m = m @ np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def hflip(crop: np.ndarray, points5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a crop and its 5 points, swapping left and right labels (eyes, mouth corners)."""
    w = crop.shape[1]
    p = np.array(points5, np.float64)
    p[:, 0] = w - 1 - p[:, 0]
    return np.ascontiguousarray(crop[:, ::-1]), p[list(FLIP_ORDER)]


@dataclass
class Augment:
    """Random changes applied to each training sample (all off: ``Augment.none()``)."""

    box_jitter: float = 1.0        # times MTCNN's measured box spread
    max_angle_deg: float = 30.0    # rotation, uniform in +-max_angle_deg ...
    rotate_prob: float = 0.7       # ... with this probability (else upright)
    scale_jitter: float = 0.10     # crop scale uniform in 1 +- scale_jitter
    shift_jitter: float = 0.05     # crop centre moved uniformly by up to this share of the side
    flip_prob: float = 0.5         # horizontal flip, labels swapped
    colour: float = 0.3            # brightness / contrast / saturation strength; grey with prob colour/2

    @staticmethod
    def none() -> "Augment":
        return Augment(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def colour_jitter(crop: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random brightness, contrast and saturation (and sometimes grey) of a uint8 RGB crop."""
    if strength <= 0:
        return crop
    x = crop.astype(np.float32)
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    sat = 0.0 if rng.random() < strength / 2 else 1 + strength * rng.uniform(-1, 1)
    x = grey[..., None] + sat * (x - grey[..., None])
    x = (x - x.mean()) * (1 + strength * rng.uniform(-1, 1)) + x.mean()
    x = x * (1 + strength * rng.uniform(-1, 1))
    return np.clip(x, 0, 255).astype(np.uint8)


def make_sample(image: np.ndarray, points5: np.ndarray, box: np.ndarray, size: int, margin: float,
                angle_deg: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0),
                flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The crop of ``box`` (grown by ``margin``, turned, scaled, shifted, maybe mirrored) and its 5
    points in crop pixels."""
    m = crop_matrix(box, size, margin, angle_deg, scale, shift)
    crop, pts = warp_crop(image, m, size), map_points(m, points5)
    return hflip(crop, pts) if flip else (crop, pts)


def random_sample(face: LandmarkFace, size: int, margin: float, aug: Augment,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (crop, crop-pixel 5 points) training sample of a face."""
    box = box_from_points(face.points68, rng if aug.box_jitter > 0 else None, aug.box_jitter)
    angle = rng.uniform(-aug.max_angle_deg, aug.max_angle_deg) if rng.random() < aug.rotate_prob else 0.0
    crop, pts = make_sample(face.image, face.points5, box, size, margin, angle,
                            1 + rng.uniform(-aug.scale_jitter, aug.scale_jitter),
                            tuple(rng.uniform(-aug.shift_jitter, aug.shift_jitter, 2)), rng.random() < aug.flip_prob)
    return colour_jitter(crop, rng, aug.colour), pts


class LandmarkDataset:
    """Augmented training samples of in-memory faces: ``ds[i] -> (crop (3,S,S) float, points (5,2)
    in crop-normalised units: crop pixel / size)``. A torch ``Dataset`` by duck typing."""

    def __init__(self, faces: list[LandmarkFace], size: int, margin: float, aug: Augment | None = None,
                 seed: int = 0):
        if not faces:
            raise ValueError("LandmarkDataset: no faces given")
        self.faces, self.size, self.margin = faces, size, margin
        self.aug = aug if aug is not None else Augment()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int):
        crop, pts = random_sample(self.faces[i], self.size, self.margin, self.aug, self.rng)
        return to_tensor(crop[None])[0], torch.from_numpy((pts / self.size).astype(np.float32))


def to_tensor(crops: np.ndarray):
    """uint8 (N, S, S, 3) RGB crops -> float (N, 3, S, S) in [-1, 1] (``preprocessing.to_tensor``)."""
    return _to_tensor(crops)
