"""5-point similarity alignment onto the ArcFace template.

Pure numpy + one OpenCV warp. Points are ``(5, 2)`` arrays in OpenCV pixel-centre coordinates,
ordered left eye, right eye (as seen in the image), nose, left and right mouth corner.
"""
from __future__ import annotations

import cv2
import numpy as np

# insightface's ArcFace template for 112x112 crops.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def template(size: int = 112) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` x ``size`` crop (e.g. 160 for InceptionResnetV1)."""
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama (1991) without reflection. Returns the 2x3 matrix ``M`` with ``dst ~ src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("source points coincide: no similarity transform is defined")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def apply_transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2x3 affine matrix."""
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def alignment_matrix(landmarks: np.ndarray, size: int = 112, points: np.ndarray | None = None) -> np.ndarray:
    """The 2x3 matrix that takes an image's 5 landmarks onto the template of a ``size`` crop (``points``:
    another template's 5 points in that crop, e.g. a teacher's; default the ArcFace one)."""
    return similarity_transform(landmarks, template(size) if points is None else np.asarray(points, np.float64))


def warp_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112, points: np.ndarray | None = None) -> np.ndarray:
    """Aligned ``size`` x ``size`` crop of the face whose 5 landmarks are given (black outside the image);
    ``points``: the template's 5 points in the crop (default: the ArcFace template)."""
    m = alignment_matrix(landmarks, size, points)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def eye_centres_error(found: np.ndarray, size: int = 112) -> np.ndarray:
    """Distance in pixels of each found eye pair (N, 2, 2) from the template's eye points."""
    return np.linalg.norm(np.asarray(found, np.float64) - template(size)[:2], axis=-1)
