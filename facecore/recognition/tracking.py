"""Face tracks between detections: IoU assignment, optical-flow motion, identity by voting.

Boxes are ``[x1, y1, x2, y2]`` and landmarks ``(5, 2)``, both in OpenCV pixel-centre coordinates
(CONTRIBUTING.md, 'Coordinates'). A detection frame assigns detections to tracks by the matching
of largest total IoU (Hungarian algorithm); between detections ``FlowTracker`` moves each track's
box and landmarks with pyramidal Lucas-Kanade flow on a small grey frame, so the networks need not
run on every frame.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import cv2
import numpy as np

UNKNOWN = "Unknown"


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of boxes ``a`` (N, 4) and ``b`` (M, 4); 0 for empty boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def max_weight_assignment(weight: np.ndarray) -> list[tuple[int, int]]:
    """Row-column pairs of a full assignment maximising the total weight (Hungarian, O(n^3))."""
    w = np.asarray(weight, np.float64)
    if w.size == 0:
        return []
    transposed = w.shape[0] > w.shape[1]
    cost = -(w.T if transposed else w)  # n <= m rows
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p, way = np.zeros(m + 1, np.int64), np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = np.full(m + 1, np.inf), np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
    return sorted((c, r) for r, c in pairs) if transposed else sorted(pairs)


def match_boxes(a: np.ndarray, b: np.ndarray, min_iou: float = 0.3) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes ``a[i]``, ``b[j]`` with IoU >= ``min_iou`` of largest total IoU."""
    iou = iou_matrix(a, b)
    w = np.where(iou >= min_iou, iou, 0.0)
    return [(i, j) for i, j in max_weight_assignment(w) if w[i, j] > 0]


@dataclass
class Track:
    """One tracked face: where it is, and the identity votes of its recent embeddings."""

    track_id: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0
    votes: deque = field(default_factory=lambda: deque(maxlen=5))
    last_embedded: int = -(10**9)
    misses: int = 0
    lost: bool = False

    def vote(self, name: str, similarity: float) -> None:
        """Record one embedding's decision (``Unknown`` below the threshold)."""
        self.votes.append((name, float(similarity)))

    @property
    def identity(self) -> tuple[str, float]:
        """Majority label of the recent votes (ties: the latest) and its mean similarity."""
        if not self.votes:
            return UNKNOWN, float("nan")
        counts = Counter(n for n, _ in self.votes)
        top = max(counts.values())
        name = next(n for n, _ in reversed(self.votes) if counts[n] == top)
        return name, float(np.mean([s for n, s in self.votes if n == name]))


class FlowTracker:
    """Moves track boxes and landmarks from one grey frame to the next with Lucas-Kanade flow.

    Each track's motion is the similarity transform (LMedS) fitted to corner points inside its box
    that pass a forward-backward check; a track with too few such points is marked ``lost``.
    """

    def __init__(self, max_points: int = 24, fb_error_px: float = 1.0, min_points: int = 5):
        self.cv2 = cv2
        self.max_points, self.fb_error_px, self.min_points = max_points, fb_error_px, min_points
        self.lk = dict(winSize=(15, 15), maxLevel=2,
                       criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))

    def step(self, prev: np.ndarray, cur: np.ndarray, tracks: list[Track], scale: float) -> None:
        """Update ``tracks`` in place; boxes are in frame pixels, grey frames are ``scale`` times smaller."""
        cv2 = self.cv2
        pts, owner = [], []
        for k, t in enumerate(tracks):
            p = self._corners(prev, t.box / scale)
            pts.append(p)
            owner += [k] * len(p)
        if not owner:
            for t in tracks:
                t.lost = True
            return
        p0 = np.concatenate(pts).astype(np.float32).reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **self.lk)
        p0b, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **self.lk)
        fb = np.linalg.norm((p0 - p0b).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < self.fb_error_px)
        owner = np.asarray(owner)
        for k, t in enumerate(tracks):
            sel = good & (owner == k)
            if sel.sum() < self.min_points:
                t.lost = True
                continue
            m, _ = cv2.estimateAffinePartial2D(p0[sel].reshape(-1, 2) * scale, p1[sel].reshape(-1, 2) * scale,
                                               method=cv2.LMEDS)
            if m is None:
                t.lost = True
                continue
            t.box = _move_box(t.box, m)
            t.landmarks = t.landmarks @ m[:, :2].T + m[:, 2]

    def _corners(self, grey: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Good features to track inside the central part of a box (grey-frame pixels)."""
        h, w = grey.shape
        x1, y1, x2, y2 = box
        mx, my = 0.15 * (x2 - x1), 0.1 * (y2 - y1)
        x1, x2 = int(max(0, x1 + mx)), int(min(w, x2 - mx + 1))
        y1, y2 = int(max(0, y1 + my)), int(min(h, y2 - my + 1))
        if x2 - x1 < 4 or y2 - y1 < 4:
            return np.zeros((0, 2), np.float32)
        c = self.cv2.goodFeaturesToTrack(grey[y1:y2, x1:x2], self.max_points, 0.01, 2, blockSize=3)
        if c is None:
            return np.zeros((0, 2), np.float32)
        return c.reshape(-1, 2) + np.array([x1, y1], np.float32)


def _move_box(box: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The box moved by a similarity's translation and scale (boxes stay axis-aligned)."""
    s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    c = m[:, :2] @ c + m[:, 2]
    half = np.array([box[2] - box[0], box[3] - box[1]]) * s / 2
    return np.array([c[0] - half[0], c[1] - half[1], c[0] + half[0], c[1] + half[1]])
