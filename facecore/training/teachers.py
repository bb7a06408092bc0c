"""Teachers for distillation, by name: strong face embedders that are not trained here.

A teacher maps its own aligned crops to unit embeddings, like ``models.Embedder``: ``align_size`` is
its crop side, ``meta`` its preprocessing (``template``: the 5 landmark positions in its crop, ``embedding_dim``),
``align(image, box, landmarks)`` cuts its crop from a photo, ``embed(crops, flip=...)`` embeds, and
``cache_key`` names its weights and settings for the embedding caches.

- ``dlib``: the ResNet face descriptor of dlib (``face_recognition``'s model; 128-d, 150x150 chips),
  weights from the ``face-recognition-models`` wheel. ``framing="ours"`` warps the chip from our 5
  MTCNN landmarks onto dlib's chip template (``DLIB_TEMPLATE_150``, measured by ``chip_template``);
  ``framing="dlib"`` lets dlib's own 5-point model place the chip inside our face box.
- ``onnx``: any embedding model in ONNX (e.g. an insightface export), run with onnxruntime; its input
  size, normalisation and template are parameters.
- ``table``: a teacher's embeddings computed elsewhere and shipped as a table (``facecore.training.teacher_table``),
  for training where the teacher is not installed (a GPU box); it looks crops up, it cannot embed.
- ``openvino-0095``, ``sface``, ``edgeface-xs``: staged teachers (``facecore.training.teachers_zoo``; their files
  are staged by the user under ``$FACECORE_TEACHERS``, never shipped); ``openvino-0095+sface`` combines
  the first two, and ``combined`` any registered teachers (``members=[...]``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.files import OK, atomic_write_bytes, encode_jpeg, load_rgb
from ..core.registry import Registry
from ..core.runtime import progress_bar
from ..detection.align import template, warp_face
from ..detection.detect import select_face
from ..detection.detectors import create_detector
from ..detection.folder import landmarks_of, read_manifest
from .teachers_zoo import CombinedTeacher, EdgeFaceTeacher, OpenVinoTeacher, SFaceTeacher, embed_batches

_TEACHERS = Registry("teacher", add_with="facecore.training.teachers.register_teacher", unique=True)

# Where our 5 MTCNN landmarks fall in dlib's 150x150 face chip (get_face_chip, padding 0.25): the mean
# over 500 LFW photos of MTCNN run on the chips dlib cut (``chip_template``).
# (498 of the 500 chips; 2026-11-30).
DLIB_TEMPLATE_150 = np.array([[46.858, 45.271], [102.738, 45.393], [74.476, 78.220], [50.566, 105.913],
                              [99.093, 105.996]])


class TableTeacher:
    """A teacher's embeddings of crops, written by ``teacher_table.write_table``, by ``<folder name>/<relative path>``."""

    name = "table"

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"table teacher: no table {p} (write one with python -m facecore.training.teacher_table)")
        with np.load(p) as z:
            keys, self._emb, self.source = [k.decode() for k in z["paths"]], z["embeddings"], str(z["teacher"])
        self._row = {k: i for i, k in enumerate(keys)}
        self.meta, self.device = {"embedding_dim": int(self._emb.shape[1])}, device
        self.cache_key = f"table-{self.source}"

    def lookup(self, root: str | os.PathLike, paths: list[str]) -> np.ndarray:
        """(N, D) unit embeddings of the crops ``root/paths``; every crop must be in the table."""
        keys = [f"{Path(root).name}/{p}" for p in paths]
        missing = [k for k in keys if k not in self._row]
        if missing:
            raise ValueError(f"table teacher ({self.source}): {len(missing)} of {len(keys)} crops are not in the "
                             f"table, e.g. {missing[:3]}; add those folders with python -m facecore.training.teacher_table")
        return _unit(self._emb[[self._row[k] for k in keys]].astype(np.float32))

    def embed(self, crops: np.ndarray, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        raise TypeError("the table teacher holds the embeddings of the crops in its table only; it cannot embed new ones")


register_teacher = _TEACHERS.register  # register_teacher("mine")(factory), or as a decorator
teacher_names = _TEACHERS.names


def create_teacher(name: str, **settings) -> Any:
    """The teacher registered as ``name`` (``teacher_names()``), built with ``settings``."""
    return _TEACHERS.lookup(name)(**settings)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing it (face_recognition_models
    imports pkg_resources, which new setuptools no longer has)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0], *parts)


class DlibTeacher:
    """dlib's ResNet face descriptor (128-d) on 150x150 chips; see the module docstring for ``framing``."""

    name = "dlib"
    FRAMINGS = ("ours", "dlib")

    def __init__(self, framing: str = "ours", device: str = "cpu"):
        import dlib  # deferred: optional: only the dlib teacher needs it (face-recognition-models wheel)

        if framing not in self.FRAMINGS:
            raise ValueError(f"framing must be one of {self.FRAMINGS}, got {framing!r}")
        weights = _package_file("face_recognition_models", "models", "dlib_face_recognition_resnet_model_v1.dat")
        self._net = dlib.face_recognition_model_v1(str(weights))
        self._shape = (dlib.shape_predictor(str(_package_file("face_recognition_models", "models",
                                                              "shape_predictor_5_face_landmarks.dat")))
                       if framing == "dlib" else None)
        self._dlib, self.framing, self.device, self.align_size = dlib, framing, device, 150
        self.meta = {"align_size": 150, "input_size": 150, "template": DLIB_TEMPLATE_150.tolist(), "embedding_dim": 128}
        with open(weights, "rb") as f:
            digest = hashlib.sha1(f.read(1 << 20)).hexdigest()[:12]
        self.cache_key = f"dlib-{digest}-{framing}"

    def align(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 150x150 chip of the face with MTCNN ``box`` and ``landmarks`` in RGB ``image``."""
        if self.framing == "ours":
            return warp_face(image, landmarks, 150, DLIB_TEMPLATE_150)
        d = self._dlib
        x1, y1, x2, y2 = (float(v) for v in box)
        shape = self._shape(image, d.rectangle(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))))
        return np.asarray(d.get_face_chip(image, shape, size=150, padding=0.25))

    def embed(self, crops: np.ndarray, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        """(N, 128) unit embeddings of uint8 (N, 150, 150, 3) RGB chips; ``flip`` adds the mirror's."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        if crops.shape[1:] != (150, 150, 3) or crops.dtype != np.uint8:
            raise ValueError(f"dlib teacher: expected uint8 (N, 150, 150, 3) chips, got {crops.dtype} {crops.shape}")
        out = []
        for i in range(0, len(crops), batch_size):
            chunk = [np.ascontiguousarray(c) for c in crops[i:i + batch_size]]
            e = np.asarray(self._net.compute_face_descriptor(chunk), np.float32)
            if flip:
                e = e + np.asarray(self._net.compute_face_descriptor([np.ascontiguousarray(c[:, ::-1]) for c in chunk]),
                                   np.float32)
            out.append(e)
        return _unit(np.concatenate(out))


class OnnxTeacher:
    """An ONNX embedding model: NCHW float input of ``input_size``, ``(x / 255 - mean) / std`` per channel."""

    name = "onnx"

    def __init__(self, path: str | os.PathLike, input_size: int = 112, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                 align_size: int | None = None, points: np.ndarray | None = None, bgr: bool = False, device: str = "cpu"):
        import onnxruntime as ort  # deferred: optional: only the onnx teacher needs it

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"onnx teacher: no model file {p}")
        self._sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        self._input = self._sess.get_inputs()[0].name
        self.align_size = int(align_size or input_size)
        self.points = template(self.align_size) if points is None else np.asarray(points, np.float64)
        self.input_size, self.bgr, self.device = int(input_size), bool(bgr), device
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        dim = int(self._sess.get_outputs()[0].shape[-1])
        self.meta = {"align_size": self.align_size, "input_size": self.input_size, "template": self.points.tolist(),
                     "embedding_dim": dim}
        with open(p, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()[:12]
        self.cache_key = f"onnx-{digest}-{self.input_size}-{self.mean.tolist()}-{self.std.tolist()}-{int(self.bgr)}"

    def align(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return warp_face(image, landmarks, self.align_size, self.points)

    def _run(self, crops: np.ndarray) -> np.ndarray:
        x = np.stack([c if c.shape[0] == self.input_size else
                      cv2.resize(c, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA) for c in crops])
        x = x[..., ::-1] if self.bgr else x
        x = ((x.astype(np.float32) / 255.0 - self.mean) / self.std).transpose(0, 3, 1, 2)
        return np.asarray(self._sess.run(None, {self._input: np.ascontiguousarray(x)})[0], np.float32)

    def embed(self, crops: np.ndarray, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, self.meta["embedding_dim"]), np.float32)
        return embed_batches(self._run, crops, batch_size, flip)


def teacher_crops(src_root: str | os.PathLike, aligned_dir: str | os.PathLike, teacher, dst: str | os.PathLike,
                  progress: bool = True) -> Path:
    """The teacher's own crops of every face an alignment folder found (``align_folder``'s manifest in
    ``aligned_dir``: box and landmarks of each photo of ``src_root``), as JPEGs (quality 95) under
    ``dst`` with the same relative names. Resumable: existing crops are kept. Returns ``dst``."""
    m = read_manifest(aligned_dir)
    m = m[m.status == OK]
    dst = Path(dst)
    todo = [i for i, out in enumerate(m.output) if not (dst / out).exists()]
    boxes, lms = m[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), landmarks_of(m)
    for i in progress_bar(todo, desc=f"{teacher.name} crops", unit="face", disable=not progress or not todo):
        img = load_rgb(Path(src_root) / m.path.iloc[i], max_side=None)
        if img.status == OK:
            atomic_write_bytes(dst / m.output.iloc[i], encode_jpeg(teacher.align(img.rgb, boxes[i], lms[i]), 95))
    return dst


def chip_template(images: list[np.ndarray], boxes: np.ndarray, detector=None) -> tuple[np.ndarray, int]:
    """Where MTCNN's 5 landmarks fall in dlib's own 150x150 chips of these faces: the mean over the
    chips where MTCNN finds the face again, and how many did. ``boxes``: our face box in each image."""
    teacher = DlibTeacher(framing="dlib")
    detector = detector or create_detector("mtcnn", pad_frac=0.0)
    chips = [teacher.align(img, b, np.zeros((5, 2))) for img, b in zip(images, boxes)]
    found = []
    for chip, det in zip(chips, detector.detect(chips)):
        j = select_face(det, chip.shape[:2])
        if j >= 0:
            found.append(det.landmarks[j].astype(np.float64))
    if not found:
        raise ValueError("MTCNN found no face in any dlib chip")
    return np.mean(found, axis=0), len(found)


register_teacher("dlib")(DlibTeacher)
register_teacher("onnx")(OnnxTeacher)
register_teacher("table")(TableTeacher)
register_teacher("openvino-0095")(OpenVinoTeacher)
register_teacher("sface")(SFaceTeacher)
register_teacher("edgeface-xs")(EdgeFaceTeacher)


@register_teacher("combined")
def combined_teacher(members: list[str], member_settings: dict | None = None, name: str = "",
                     device: str = "cpu") -> CombinedTeacher:
    """Registered teachers ``members`` as one (``teachers_zoo.CombinedTeacher``); ``member_settings``:
    name -> that member's settings."""
    settings = member_settings or {}
    return CombinedTeacher([create_teacher(m, **settings.get(m, {})) for m in members], name, device)


@register_teacher("openvino-0095+sface")
def openvino_sface(model_dir: str | os.PathLike | None = None, threads: int = 1,
                   device: str = "cpu") -> CombinedTeacher:
    """Intel's 0095 and SFace combined: the cosine is the mean of their two cosines."""
    both = {"model_dir": model_dir, "threads": threads}
    return combined_teacher(["openvino-0095", "sface"], {"openvino-0095": both, "sface": both}, "openvino-0095+sface",
                            device)
