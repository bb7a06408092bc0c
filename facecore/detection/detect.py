"""MTCNN face detection, batched and vectorised, on facenet-pytorch's shipped P/R/O-Net weights.

facenet-pytorch's own ``detect_face`` crops every candidate box in a Python loop and stretches
boxes that cross the image border; here all crops of a stage are taken in one ``roi_align`` call
(zero padding outside the image, as in the original MTCNN), and a whole batch of images runs
through each network at once. Coordinates follow OpenCV's convention: pixel ``i`` has its centre
at ``i``; boxes are ``[x1, y1, x2, y2]`` and landmarks are ``(5, 2)``: left eye, right eye (as seen
in the image), nose, left and right mouth corner.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet  # shipped weights, no download
from torchvision.ops import batched_nms, roi_align

PNET_STRIDE, PNET_CELL = 2, 12
SELECT_RULES = ("center_largest", "largest", "center", "best")


@dataclass
class Detection:
    """All faces found in one image, best score first (empty arrays when there are none)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))
    padded: bool = False  # found by the retry on the padded image (coordinates are the original's)

    def __len__(self) -> int:
        return len(self.scores)

    def scaled(self, factor: float) -> "Detection":
        """The same detection in an image resized by ``1 / factor`` (coordinates times factor)."""
        return Detection(self.boxes * factor, self.scores.copy(), self.landmarks * factor, self.padded)

    def shifted(self, dx: float, dy: float) -> "Detection":
        """The same detection with ``(dx, dy)`` added to every box corner and landmark."""
        d = np.array([dx, dy], np.float32)
        return Detection(self.boxes + np.tile(d, 2), self.scores.copy(), self.landmarks + d, self.padded)


def select_face(det: Detection, image_hw: tuple[int, int], rule: str = "center_largest") -> int:
    """Index of the face to keep when several are found, or -1 when there is none.

    ``center_largest`` (default, insightface's rule): box area minus twice the squared distance of
    the box centre from the image centre; ``largest``: box area; ``center``: nearest the image
    centre; ``best``: highest detection score.
    """
    if rule not in SELECT_RULES:
        raise ValueError(f"unknown face selection rule {rule!r}; choose one of {SELECT_RULES}")
    if len(det) == 0:
        return -1
    b = det.boxes
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    h, w = image_hw
    dist2 = (cx - (w - 1) / 2) ** 2 + (cy - (h - 1) / 2) ** 2
    value = {"center_largest": area - 2.0 * dist2, "largest": area, "center": -dist2,
             "best": det.scores}[rule]
    return int(np.argmax(value))


def plausible_faces(boxes: np.ndarray, scores: np.ndarray, min_score: float = 0.9,
                    min_rel_side: float = 0.5) -> np.ndarray:
    """Indices of the detections (``boxes`` (N, 4), ``scores`` (N,), one image) that look like faces:
    a score of at least ``min_score``, and a box side at least ``min_rel_side`` times the largest
    such box's in the image.

    MTCNN's default last-stage threshold (0.7) boxes dark background, hair, hands and jaws in
    video; on the demo clip (``bench/experiments/detection_filter.py``) these two rules dropped all 29 such
    detections and 2 of 426 faces, where landmark geometry (yaw, eye distance, where the landmarks
    sit in the box) did not separate them. 0 switches a rule off.
    """
    boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    ok = scores >= min_score
    if not ok.any():
        return np.zeros(0, np.int64)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    ok &= side >= min_rel_side * side[ok].max()
    return np.nonzero(ok)[0]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to the square of its longer side around the same centre."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + reg * torch.stack([w, h, w, h], dim=1)


def _crops(images: torch.Tensor, idx: torch.Tensor, boxes: torch.Tensor, size: int, ratio: int) -> torch.Tensor:
    """Crop-and-resize every box (continuous pixel-edge coordinates) to size x size, zeros outside.

    ``ratio`` bilinear samples per output pixel and axis (-1: enough to cover the box, like area
    resampling; 2 is ~2.5x faster and used for R-Net's many candidates).
    """
    rois = torch.cat([idx[:, None].to(boxes.dtype), boxes], dim=1)
    out = roi_align(images, rois, (size, size), spatial_scale=1.0, sampling_ratio=ratio, aligned=True)
    return out.contiguous(memory_format=torch.channels_last)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _min_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS with overlap measured as intersection over the smaller box (MTCNN's last stage)."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        overlap = iw * ih / np.maximum(np.minimum(area[i], area[rest]), 1e-9)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


PAD_MODES = ("constant", "edge")


def pad_image(img: np.ndarray, frac: float, mode: str = "constant") -> tuple[np.ndarray, int]:
    """``img`` with a border of ``round(frac * shorter side)`` px on every side (black or edge-replicated)."""
    if mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {mode!r}")
    p = int(round(frac * min(img.shape[:2])))
    return np.pad(img, ((p, p), (p, p), (0, 0)), mode=mode), p


class FaceDetector:
    """Batched MTCNN. ``detect(images)`` takes a list of HxWx3 uint8 RGB arrays of any sizes.

    ``pad_frac`` > 0: an image where no face is found is searched once more with a border of that
    share of its shorter side (``pad_mode``: ``edge`` replicated or ``constant`` black), which finds
    faces in photos cropped tightly around them; such detections have ``padded=True``. Edge
    replication found more (``bench/experiments/tight_crops.py``: LFW cut to MTCNN's box shrunk by 10 %: 52.3 %
    found without the retry, 94.3 % with a black border, 99.7 % with the edge replicated).
    """

    name = "mtcnn"

    def __init__(self, device: str = "cpu", min_face_size: float = 20.0,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 max_side: int = 1024, min_face_frac: float = 0.0, pad_frac: float = 0.25,
                 pad_mode: str = "edge"):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for but torch sees no CUDA GPU; use device='cpu'")
        # channels_last: PyTorch's CPU max-pool and small convolutions run about 2x faster in it.
        self.pnet, self.rnet, self.onet = (n.to(self.device, memory_format=torch.channels_last).eval()
                                           for n in (PNet(), RNet(), ONet()))
        self.min_face_size, self.thresholds, self.factor = float(min_face_size), thresholds, factor
        self.max_side = max_side
        # Faces smaller than this share of an image's shorter side are not looked for: a dataset
        # photo centres one subject, and skipping the finest pyramid levels is most of the speed.
        self.min_face_frac = float(min_face_frac)
        if not (0 <= pad_frac <= 2) or pad_mode not in PAD_MODES:
            raise ValueError(f"pad_frac must be in [0, 2] and pad_mode one of {PAD_MODES}, got {pad_frac!r}, {pad_mode!r}")
        self.pad_frac, self.pad_mode = float(pad_frac), pad_mode

    @property
    def settings(self) -> dict:
        """Everything that changes what is detected (the embedding caches key on it; not the device)."""
        return {"min_face_size": self.min_face_size, "thresholds": list(self.thresholds), "factor": self.factor,
                "max_side": self.max_side, "min_face_frac": self.min_face_frac, "pad_frac": self.pad_frac,
                "pad_mode": self.pad_mode}

    # -- public -----------------------------------------------------------------------------
    @torch.inference_mode()
    def detect(self, images: list[np.ndarray], min_face_size: float | None = None) -> list[Detection]:
        """Detect faces in each image; images are grouped by padded size and run in batches.

        Images whose longer side exceeds ``max_side`` are detected on a downscaled copy and the
        results mapped back to the original coordinates. Images without a face are retried once with
        a border (``pad_frac``), the results mapped back to the original coordinates.
        """
        dets = self._detect_all(images, min_face_size)
        missed = [i for i, d in enumerate(dets) if len(d) == 0]
        if self.pad_frac > 0 and missed:
            padded = [pad_image(images[i], self.pad_frac, self.pad_mode) for i in missed]
            for i, (_, p), det in zip(missed, padded, self._detect_all([im for im, _ in padded], min_face_size)):
                if len(det):
                    det.padded = True
                    dets[i] = det.shifted(-p, -p)
        return dets

    def _detect_all(self, images: list[np.ndarray], min_face_size: float | None) -> list[Detection]:
        dets: list[Detection | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray, float]]] = {}
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"image {i}: expected an HxWx3 uint8 RGB array, got {img.dtype} {img.shape}")
            img, scale = self._limit(img)
            key = (-(-img.shape[0] // 32) * 32, -(-img.shape[1] // 32) * 32)
            groups.setdefault(key, []).append((i, img, scale))
        for (hp, wp), members in groups.items():
            batch = np.zeros((len(members), hp, wp, 3), np.uint8)
            for j, (_, img, _) in enumerate(members):
                batch[j, : img.shape[0], : img.shape[1]] = img
            sizes = [m[1].shape[:2] for m in members]
            # min_face_frac applies to the padded size, so that one size group always gets the same
            # pyramid (new tensor shapes cost oneDNN a fresh kernel set on every call).
            min_face = max(min_face_size or self.min_face_size, self.min_face_frac * min(hp, wp))
            found = self._detect_batch(batch, sizes, min_face)
            for (i, _, scale), det in zip(members, found):
                dets[i] = det.scaled(scale) if scale != 1.0 else det
        return dets  # type: ignore[return-value]

    # -- internals --------------------------------------------------------------------------
    def _limit(self, img: np.ndarray) -> tuple[np.ndarray, float]:
        long_side = max(img.shape[:2])
        if long_side <= self.max_side:
            return img, 1.0

        s = self.max_side / long_side
        small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        return small, long_side / self.max_side

    def _detect_batch(self, batch: np.ndarray, sizes: list[tuple[int, int]], min_face: float) -> list[Detection]:
        dev = self.device
        # Pixel values stay 0..255 (padding and out-of-image crops are black); networks see them
        # normalised to [-1, 1].
        imgs = torch.from_numpy(batch).to(dev).permute(0, 3, 1, 2).float()
        boxes, idx = self._stage1(imgs, min_face, min(min(s) for s in sizes))
        if len(boxes):
            boxes, idx, _ = self._refine(imgs, boxes, idx, self.rnet, 24, self.thresholds[1])
        lms = torch.zeros(0, 5, 2, device=dev)
        if len(boxes):
            boxes, idx, lms = self._refine(imgs, boxes, idx, self.onet, 48, self.thresholds[2])
        return self._split(boxes, idx, lms, len(sizes))

    def _stage1(self, imgs: torch.Tensor, min_face: float, min_side: int) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = imgs.shape[2:]
        scale = PNET_CELL / min_face
        side = min_side * scale
        all_boxes, all_idx = [], []
        planar = imgs.contiguous()  # area resampling is ~1.7x faster on NCHW than on channels-last, same values
        while side >= PNET_CELL:
            sh, sw = int(h * scale + 1), int(w * scale + 1)
            level = F.interpolate(planar, size=(sh, sw), mode="area")
            reg, prob = self.pnet(_norm(level).contiguous(memory_format=torch.channels_last))
            mask = prob[:, 1] >= self.thresholds[0]
            n, yy, xx = mask.nonzero(as_tuple=True)
            if len(n):
                x1 = (PNET_STRIDE * xx).float() / scale
                y1 = (PNET_STRIDE * yy).float() / scale
                b = torch.stack([x1, y1, x1 + PNET_CELL / scale, y1 + PNET_CELL / scale], dim=1)
                s = prob[n, 1, yy, xx]
                r = reg[n, :, yy, xx]
                keep = batched_nms(b, s, n, 0.5)
                all_boxes.append(torch.cat([b[keep], s[keep, None], r[keep]], dim=1))
                all_idx.append(n[keep])
            scale *= self.factor
            side *= self.factor
        if not all_boxes:
            return torch.zeros(0, 4, device=imgs.device), torch.zeros(0, dtype=torch.long, device=imgs.device)
        cand, idx = torch.cat(all_boxes), torch.cat(all_idx)
        keep = batched_nms(cand[:, :4], cand[:, 4], idx, 0.7)
        cand, idx = cand[keep], idx[keep]
        return _square(_regress(cand[:, :4], cand[:, 5:9])), idx

    def _refine(self, imgs, boxes, idx, net, size, threshold):
        out = net(_norm(_crops(imgs, idx, boxes, size, 2 if net is self.rnet else -1)))
        reg, prob = out[0], out[-1]
        score = prob[:, 1]
        ok = score > threshold
        boxes, idx, score, reg = boxes[ok], idx[ok], score[ok], reg[ok]
        if net is self.rnet:
            keep = batched_nms(boxes, score, idx, 0.7)
            return _square(_regress(boxes[keep], reg[keep])), idx[keep], None
        pts = out[1][ok]
        wh = (boxes[:, 2:4] - boxes[:, 0:2])
        # O-Net's points are fractions of the crop, decoded as facenet-pytorch (and MTCNN's
        # reference code) decode them, so that our landmarks match theirs (mean offset < 0.15 px).
        lx = boxes[:, 0:1] + pts[:, 0:5] * (wh[:, 0:1] + 1)
        ly = boxes[:, 1:2] + pts[:, 5:10] * (wh[:, 1:2] + 1)
        lms = torch.stack([lx, ly], dim=2)
        boxes = _regress(boxes, reg)
        boxes = torch.cat([boxes, score[:, None]], dim=1)
        return boxes, idx, lms

    @staticmethod
    def _split(boxes, idx, lms, n) -> list[Detection]:
        if len(boxes) == 0:
            return [Detection() for _ in range(n)]
        b = boxes.cpu().numpy().astype(np.float32)
        ii = idx.cpu().numpy()
        pts = lms.cpu().numpy().astype(np.float32)
        out = []
        for j in range(n):
            sel = np.nonzero(ii == j)[0]
            if len(sel) == 0:
                out.append(Detection())
                continue
            keep = sel[_min_nms(b[sel, :4], b[sel, 4], 0.7)]
            # boxes in pixel-centre coordinates, like the landmarks
            out.append(Detection(b[keep, :4] - 0.5, b[keep, 4].copy(), pts[keep]))
        return out
