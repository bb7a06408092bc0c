"""Recognition of photos and of video frames: detect -> align -> embed -> match against a gallery.

    rec = Recognizer.from_name(people_faces="people_faces")  # default model; its 1 % LFW FPR threshold
    for face in rec.identify("photo.jpg"):                    # a path, a PIL image or an RGB array
        print(face.name, face.similarity, face.box)
    rec.verify("a.jpg", "b.jpg").same                         # two photos of one person?

``identify`` and ``verify`` are stateless. ``process(frame)`` is the video tracker (realtime.py's
pipeline), fast enough for live video on a CPU: it runs MTCNN on a reduced copy of the frame every
``detect_every`` frames (every ``search_every`` while no face is tracked), or at once when a track
is lost or the scene cuts; in between, tracks follow their faces with optical flow
(``facecore.recognition.tracking.FlowTracker``). A track is embedded when it starts and again every
``embed_every`` frames, all due faces of a frame in one batch, and its identity is the majority of
its last ``votes`` embeddings' decisions (by default the latest one).
``recognize_frame`` is the straightforward loop (full-frame MTCNN, every face embedded, no
tracking) that ``bench/realtime_fps.py`` compares with.
"""
from __future__ import annotations

import os
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..core.images import as_rgb
from ..core.paths import PROJECT_ROOT, USER_CACHE, in_checkout
from ..core.runtime import autocast, native_bf16
from ..detection.detect import FaceDetector, plausible_faces
from ..detection.detectors import create_detector
from ..detection.faces import detect_align
from ..networks.models import Embedder
from .gallery import Gallery, build_gallery
from .photos import Verification, photo_face, verification
from .recognizer import REALTIME_FPR, ModelChoiceError, input_path, load_model
from .tracking import UNKNOWN, FlowTracker, Track, match_boxes


@dataclass
class RecognizerConfig:
    """Speed/accuracy knobs of ``Recognizer``; pixel sizes are named with their unit."""

    detect_side_px: int = 640  # longer side of the reduced frame the detector sees
    min_face_px: float = 20.0  # smallest face looked for, in reduced-frame pixels (FaceDetector's default)
    detect_every: int = 5  # frames between detections while a face is tracked
    search_every: int = 1  # frames between detections while no face is tracked (faces are acquired at once)
    embed_every: int = 5  # frames between re-embeddings of a track
    min_iou: float = 0.3  # track <-> detection overlap needed to continue a track
    max_misses: int = 1  # detections a track may miss before it is dropped
    cut_grey_levels: float = 20.0  # mean grey change of a 32x18 thumbnail that marks a scene cut
    votes: int = 1  # recent embeddings voting on a track's identity (ties: the latest; 1: the latest decides)
    refine_side_px: int = 0  # >0: re-detect landmarks on full-resolution face patches this size before embedding
    flip: bool = True  # embed each face with its mirror image too, as the LFW-calibrated thresholds and the gallery do
    min_score: float = 0.9  # detections scored lower are not faces (hair, hands, background; 0: keep all)
    min_rel_side: float = 0.5  # nor boxes smaller than this share of the frame's largest face (0: keep all)
    bf16: bool | None = None  # embed in bfloat16 on the CPU (None: where it is native, runtime.native_bf16)


@dataclass
class FaceResult:
    """One face of a photo or frame, in its pixels: ``box`` (x1, y1, x2, y2), ``landmarks`` (5 x (x, y):
    eyes, nose, mouth corners), the gallery's best ``name`` (``Unknown`` below the threshold) and its
    cosine ``similarity``; ``track_id``: the video track (-1 for photos)."""

    box: np.ndarray
    landmarks: np.ndarray
    name: str
    similarity: float
    track_id: int = -1


@dataclass
class Recognizer:
    """A gallery matcher: ``identify(photo)`` and ``verify(a, b)`` for photos, ``process(frame)`` for video."""

    embedder: Embedder
    gallery: Gallery
    threshold: float
    config: RecognizerConfig = field(default_factory=RecognizerConfig)
    detector: FaceDetector | str | None = None  # an object or a facecore.detection.detectors name (None: MTCNN)
    frame_index: int = -1
    counts: Counter = field(default_factory=Counter)
    threshold_origin: str = ""  # where the threshold comes from (from_name: the checkpoint's FPR table, ...)
    photo_detector: FaceDetector | str | None = None  # identify/verify's detector (None: MTCNN's defaults, as the gallery)

    @classmethod
    def from_name(cls, *, model_name: str | None = None, people_faces: str | os.PathLike | None = None,
                  fpr: float = REALTIME_FPR, threshold: float | None = None,
                  checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                  config: RecognizerConfig | None = None, cache_dir: str | os.PathLike | None = USER_CACHE,
                  detector=None, head: bool = False) -> "Recognizer":
        """A recognizer of the people in ``people_faces`` (one sub-folder or photo per person; default:
        ``people_faces/`` of the checkout when running from one, else of the current folder) with a
        shipped model (default: the default model) or a ``checkpoint``, and its LFW threshold at ``fpr``
        (``facecore.recognition.recognizer``: model and threshold choice). Keyword arguments only.
        ``cache_dir``: the gallery's embedding cache (default ``gallery/`` in
        ``facecore.core.paths.cache_root()``; None: no cache). ``detector`` (a name or object,
        ``facecore.detection.detectors``) finds the gallery's faces; the video frames' detector is set by
        ``config`` (``RecognizerConfig``)."""
        if people_faces is None:
            people_faces = PROJECT_ROOT / "people_faces" if in_checkout() else Path("people_faces")
        if not isinstance(people_faces, (str, os.PathLike)):
            raise TypeError(f"people_faces: expected a folder path, got {type(people_faces).__name__}")
        people = input_path(people_faces)
        if not people.is_dir():
            raise ModelChoiceError(f"people_faces={people}: no such folder (one sub-folder or photo per person)")
        embedder, thr, origin = load_model(model_name, checkpoint, fpr, threshold, device, head)
        gallery = build_gallery(people, embedder, detector=detector, cache_dir=cache_dir)
        kw = {} if config is None else {"config": config}
        return cls(embedder, gallery, thr, threshold_origin=origin, photo_detector=detector, **kw)

    def identify(self, image, bgr: bool = False) -> list[FaceResult]:
        """Every face of one photo (detection score >= ``config.min_score``), best first, each named from
        the gallery; stateless. ``image``: a path, a PIL image or a uint8 RGB array (grey or RGBA too;
        an OpenCV BGR array with ``bgr=True``)."""
        rgb = as_rgb(image, bgr, "image")
        return recognize_frame(rgb, self._photos(), self.embedder, self.gallery, self.threshold, self.config.flip,
                               self.config.min_score, 0.0, self.bf16)

    def verify(self, a, b, bgr: bool = False) -> Verification:
        """Whether photos ``a`` and ``b`` (as ``identify`` takes them) show one person: the similarity of
        their centre-largest faces against the threshold. ValueError naming ``a`` or ``b`` without a face."""
        faces = [photo_face(as_rgb(x, bgr, p), self._photos(), self.embedder, self.config.flip, self.bf16, p)
                 for x, p in ((a, "a"), (b, "b"))]
        return verification(faces[0], faces[1], self.threshold)

    def __post_init__(self) -> None:
        self._cv2 = cv2
        c = self.config
        # video frames: no padded retry (a frame without a face is the common case, not a tight crop)
        if self.detector is None or self.detector == "mtcnn":
            self.detector = create_detector("mtcnn", device=self.embedder.device, min_face_size=c.min_face_px,
                                            max_side=c.detect_side_px, pad_frac=0.0)
        elif isinstance(self.detector, str):  # another registered detector, with its own defaults
            self.detector = create_detector(self.detector)
        self.refiner = (create_detector("mtcnn", device=self.embedder.device, min_face_frac=0.3,
                                        max_side=c.refine_side_px, pad_frac=0.0) if c.refine_side_px else None)
        self.bf16 = embed_bf16(c.bf16, self.embedder.device)
        self.flow = FlowTracker()
        self.tracks: list[Track] = []
        self._next_id, self._last_detect = 0, -(10**9)
        self._prev_grey: np.ndarray | None = None
        self._prev_thumb: np.ndarray | None = None

    def process(self, frame: np.ndarray, bgr: bool = False) -> list[FaceResult]:
        """The video tracker: update the tracks with the next frame of a stream and return its visible
        faces (``track_id`` follows a face across frames). Frames are RGB uint8 arrays (an OpenCV BGR
        frame with ``bgr=True``); for unrelated photos use ``identify``."""
        frame = as_rgb(frame, bgr, "frame")
        self.frame_index += 1
        grey, scale = self._grey(frame)
        thumb = self._cv2.resize(grey, (32, 18), interpolation=self._cv2.INTER_AREA).astype(np.float32)
        if self._prev_grey is not None and self._prev_grey.shape != grey.shape:
            self._prev_grey = self._prev_thumb = None  # a frame of another size (folder of images): a cut
            self.tracks = []
        change = float(np.abs(thumb - self._prev_thumb).mean()) if self._prev_thumb is not None else 0.0
        cut = change > self.config.cut_grey_levels
        if cut:
            self.counts["cuts"] += 1
            self.tracks = []
        lost_now = False
        if self.tracks and self._prev_grey is not None:
            before = sum(t.lost for t in self.tracks)
            self.flow.step(self._prev_grey, grey, [t for t in self.tracks if not t.lost], scale)
            lost_now = sum(t.lost for t in self.tracks) > before
        every = self.config.detect_every if any(not t.lost for t in self.tracks) else self.config.search_every
        if cut or lost_now or self.frame_index - self._last_detect >= every:
            self._detect(frame)
        self._prev_grey, self._prev_thumb = grey, thumb
        return [self._result(t) for t in self.tracks if not t.lost]

    # -- internals --------------------------------------------------------------------------
    def _photos(self):
        """The photo detector, made on first use."""
        if self.photo_detector is None or self.photo_detector == "mtcnn":
            self.photo_detector = create_detector("mtcnn", device=self.embedder.device)
        elif isinstance(self.photo_detector, str):
            self.photo_detector = create_detector(self.photo_detector)
        return self.photo_detector

    def _grey(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame reduced to the detector's size, in grey, and the factor back to frame pixels."""
        cv2 = self._cv2
        s = min(1.0, self.config.detect_side_px / max(frame.shape[:2]))
        small = frame if s == 1.0 else cv2.resize(frame, (round(frame.shape[1] * s), round(frame.shape[0] * s)),
                                                  interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), frame.shape[1] / small.shape[1]

    def _detect(self, frame: np.ndarray) -> None:
        """Detect, continue or start tracks, and embed the faces that are due, in one batch."""
        c = self.config
        self._last_detect = self.frame_index
        self.counts["detections"] += 1
        faces = face_filter(detect_align([frame], self.detector, self.embedder.align_size, select="all")[0],
                            c.min_score, c.min_rel_side)
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
        pairs = match_boxes(np.array([t.box for t in self.tracks]).reshape(-1, 4), boxes, c.min_iou)
        # second round, looser: a track that drifted off its face still beats a duplicate new track
        free_t = [i for i in range(len(self.tracks)) if i not in {a for a, _ in pairs}]
        free_d = [j for j in range(len(boxes)) if j not in {b for _, b in pairs}]
        if free_t and free_d:
            loose = match_boxes(np.array([self.tracks[i].box for i in free_t]).reshape(-1, 4), boxes[free_d], 0.05)
            pairs = list(pairs) + [(free_t[a], free_d[b]) for a, b in loose]
        holder = {j: self.tracks[i] for i, j in pairs}
        continued = {i for i, _ in pairs}
        kept = []
        for i, t in enumerate(self.tracks):
            if i not in continued:
                t.misses += 1
                if t.misses > c.max_misses or t.lost:
                    continue
            kept.append(t)
        for j, f in enumerate(faces):
            if j not in holder:
                holder[j] = Track(self._next_id, f.box, f.landmarks, votes=deque(maxlen=c.votes))
                self._next_id += 1
                kept.append(holder[j])
            t = holder[j]
            t.box, t.landmarks, t.score = f.box.copy(), f.landmarks.copy(), f.score
            t.misses, t.lost = 0, False
        self.tracks = kept
        due = [j for j in range(len(faces)) if self.frame_index - holder[j].last_embedded >= c.embed_every]
        if due:
            crops = [faces[j].crop for j in due]
            if self.refiner is not None:
                crops = self._refined_crops(frame, [faces[j] for j in due])
            with autocast("cpu", self.bf16):  # bfloat16 around the embedding only (RecognizerConfig.bf16)
                emb = self.embedder.embed(np.stack(crops), flip=c.flip)
            self.counts["embedded_faces"] += len(due)
            for j, (name, sim) in zip(due, self.gallery.label(emb, self.threshold)):
                holder[j].vote(name, sim)
                holder[j].last_embedded = self.frame_index

    def _refined_crops(self, frame: np.ndarray, faces: list) -> list[np.ndarray]:
        """Aligned crops from landmarks re-detected on full-resolution patches around the faces.

        The reduced frame's landmarks are a few frame pixels off; detect -> align on a patch twice
        the face's size (detected at most ``refine_side_px`` wide) places them as the full frame would.
        A face not found again keeps its crop.
        """
        h, w = frame.shape[:2]
        patches = []
        for f in faces:
            cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
            half = max(f.box[2] - f.box[0], f.box[3] - f.box[1])
            x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
            x2, y2 = int(min(w, cx + half + 1)), int(min(h, cy + half + 1))
            patches.append(frame[y1:y2, x1:x2] if min(x2 - x1, y2 - y1) >= 24 else None)
        idx = [k for k, p in enumerate(patches) if p is not None]
        found = detect_align([patches[k] for k in idx], self.refiner, self.embedder.align_size) if idx else []
        crops = [f.crop for f in faces]
        for k, r in zip(idx, found):
            if r:
                crops[k] = r[0].crop
                self.counts["refined_faces"] += 1
        return crops

    def _result(self, t: Track) -> FaceResult:
        name, sim = t.identity
        return FaceResult(np.asarray(t.box, np.float64).copy(), np.asarray(t.landmarks, np.float64).copy(),
                          name, sim, t.track_id)


def embed_bf16(asked: bool | None, device: str) -> bool:
    """Whether frames are embedded in bfloat16: as asked, else where the CPU has it natively."""
    if not str(device).startswith("cpu"):
        return False
    return native_bf16() if asked is None else bool(asked)


def face_filter(faces: list, min_score: float, min_rel_side: float) -> list:
    """The faces of one frame that ``plausible_faces`` keeps."""
    if not faces:
        return faces
    keep = plausible_faces(np.array([f.box for f in faces]), np.array([f.score for f in faces]), min_score, min_rel_side)
    return [faces[i] for i in keep]


def recognize_frame(frame: np.ndarray, detector: FaceDetector, embedder: Embedder, gallery: Gallery,
                    threshold: float, flip: bool = True, min_score: float = RecognizerConfig.min_score,
                    min_rel_side: float = RecognizerConfig.min_rel_side, bf16: bool = False) -> list[FaceResult]:
    """The straightforward loop's step: MTCNN on the full frame, embed every plausible face, match each."""
    faces = face_filter(detect_align([frame], detector, embedder.align_size, select="all")[0], min_score, min_rel_side)
    if not faces:
        return []
    with autocast("cpu", bf16):
        emb = embedder.embed(np.stack([f.crop for f in faces]), flip=flip)
    labels = gallery.label(emb, threshold)
    return [FaceResult(f.box, f.landmarks, n, s) for f, (n, s) in zip(faces, labels)]


def agreement(ours: list[list[FaceResult]], reference: list[list[FaceResult]], min_iou: float = 0.3) -> dict:
    """How often our per-frame decisions match a reference's, face-frame by face-frame.

    Faces are paired per frame by IoU (``match_boxes``). ``agree`` counts reference faces paired
    with a face of the same name; an unpaired reference face counts as a disagreement.
    """
    total = paired = agree = extra = 0
    for a, b in zip(ours, reference):
        pairs = match_boxes(_boxes(a), _boxes(b), min_iou)
        total += len(b)
        paired += len(pairs)
        extra += len(a) - len(pairs)
        agree += sum(a[i].name == b[j].name for i, j in pairs)
    return {"face_frames": total, "paired": paired, "agree": agree, "extra": extra,
            "agreement": agree / total if total else 1.0}


def label_changes(frames: list[list[FaceResult]], min_iou: float = 0.3) -> dict:
    """How often a face's name differs from the same face's in the previous frame (paired by IoU).

    For the straightforward loop this is its own flicker, which no temporal scheme can follow: it
    bounds the agreement a tracker voting over several frames can reach.
    """
    pairs = changes = 0
    for a, b in zip(frames[:-1], frames[1:]):
        for i, j in match_boxes(_boxes(a), _boxes(b), min_iou):
            pairs += 1
            changes += a[i].name != b[j].name
    return {"pairs": pairs, "changes": changes, "rate": changes / pairs if pairs else 0.0}


def label_counts(frames: list[list[FaceResult]]) -> dict[str, int]:
    """Face-frames per label (``Unknown`` included), most frequent first."""
    c = Counter(f.name for faces in frames for f in faces)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0] == UNKNOWN, kv[0])))


def _boxes(faces: list[FaceResult]) -> np.ndarray:
    return np.array([f.box for f in faces], np.float64).reshape(-1, 4)
