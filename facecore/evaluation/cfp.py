"""CFP (Celebrities in Frontal-Profile, Sengupta et al. 2016): files, pairs and alignment.

Layout (``$FACECORE_DATA/cfp``): ``images/<id>/{frontal,profile}/<nn>.jpg``; ``protocol/Pair_list_F.txt``
and ``Pair_list_P.txt`` (number -> image path); ``protocol/Split/{FF,FP}/<01..10>/{same,diff}.txt``
(pairs of numbers: FF = frontal, frontal; FP = frontal, profile); ``fiducials.csv`` (image, 30 points).

The 30 hand-marked fiducials cover one side of the face (drawn on photos to read them): 0-8 the
jaw line, 9-11 the eyebrow, 12-17 a ring around the visible eye, 18-21 the nose bridge down to the
tip (21), 22-24 the nostril, 25 the visible mouth corner, 26-29 the lips on the midline (27 and 29
where the lips meet). ``fiducial_points`` maps them to four of the five template points: that eye,
the nose tip, that mouth corner, and the mouth centre (the middle of the template's two corners);
profiles MTCNN misses are aligned from them.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..core.files import OK, atomic_write_bytes, atomic_write_text, encode_jpeg, load_rgb
from ..detection.align import similarity_transform, template
from ..detection.folder import align_folder

EYE_RING, NOSE_TIP, MOUTH_CORNER, LIP_MIDDLE = list(range(12, 18)), 21, 25, [27, 29]
PROTOCOLS = ("FF", "FP")


def read_pair_list(path: str | os.PathLike) -> dict[int, str]:
    """``Pair_list_*.txt``: image number -> path relative to the CFP folder."""
    out = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}, line {lineno}: expected '<number> <image path>', got {line!r}")
        out[int(parts[0])] = parts[1]
    return out


def read_pairs(cfp_root: str | os.PathLike, protocol: str) -> pd.DataFrame:
    """All pairs of ``FF`` or ``FP``: columns ``path1, path2, issame, fold`` (fold 0..9)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"CFP protocol must be one of {PROTOCOLS}, got {protocol!r}")
    root = Path(cfp_root)
    frontal = read_pair_list(root / "protocol" / "Pair_list_F.txt")
    second = frontal if protocol == "FF" else read_pair_list(root / "protocol" / "Pair_list_P.txt")
    rows = []
    split = root / "protocol" / "Split" / protocol
    folds = sorted(p for p in split.iterdir() if p.is_dir())
    if not folds:
        raise FileNotFoundError(f"{split}: no fold folders (01..10)")
    for fold, d in enumerate(folds):
        for kind, same in (("same", True), ("diff", False)):
            for line in (d / f"{kind}.txt").read_text().split():
                a, b = (int(x) for x in line.split(","))
                rows.append((frontal[a], second[b], same, fold))
    return pd.DataFrame(rows, columns=["path1", "path2", "issame", "fold"])


@lru_cache(maxsize=2)
def read_fiducials(cfp_root: str) -> dict[str, np.ndarray]:
    """Image path (as in the pair lists) -> (30, 2) fiducial points in that image's pixels."""
    df = pd.read_csv(Path(cfp_root) / "fiducials.csv")
    pts = df[[f"{a}{k}" for k in range(30) for a in "xy"]].to_numpy(np.float64).reshape(-1, 30, 2)
    return dict(zip(df["image"], pts))


def fiducial_points(points: np.ndarray, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """(4 image points, their 4 template points) from CFP's 30 fiducials.

    The marked eye is the image-left one when it lies left of the nose tip, else the image-right one
    (and so is the mouth corner).
    """
    p = np.asarray(points, np.float64)
    eye, nose, corner = p[EYE_RING].mean(0), p[NOSE_TIP], p[MOUTH_CORNER]
    mouth = p[LIP_MIDDLE].mean(0)
    t = template(size)
    left = eye[0] < nose[0]
    dst = np.stack([t[0] if left else t[1], t[2], t[3] if left else t[4], (t[3] + t[4]) / 2])
    return np.stack([eye, nose, corner, mouth]), dst


def warp_from_fiducials(image: np.ndarray, points: np.ndarray, size: int = 112) -> np.ndarray:
    """Aligned crop from CFP fiducials (least-squares similarity on ``fiducial_points``)."""
    src, dst = fiducial_points(points, size)
    m = similarity_transform(src, dst)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_cfp(cfp_root: str | os.PathLike, dst: str | os.PathLike, detector="mtcnn", size: int = 112,
              progress: bool = True, **align_kwargs) -> dict:
    """Align every CFP photo under ``dst`` (``align_folder`` layout); photos the detector misses are
    aligned from their fiducials (rewritten on every call, so never stale). Resumable. Returns counts,
    ``fiducial_aligned`` among them.

    The fiducial-aligned files are listed in ``dst/fiducial_aligned.csv``.
    """
    root = Path(cfp_root)
    manifest = align_folder(root / "images", dst, size=size, detector=detector, progress=progress, **align_kwargs)
    fid = read_fiducials(str(root))
    dst = Path(dst)
    done = []
    for _, row in manifest[manifest["status"] != OK].iterrows():
        key = f"images/{row['path']}"
        out = dst / str(Path(row["path"]).with_suffix(".jpg"))
        img = load_rgb(root / key, max_side=None)
        if key not in fid or img.status != OK:
            continue
        atomic_write_bytes(out, encode_jpeg(warp_from_fiducials(img.rgb, fid[key], size), 95))  # a few dozen: always fresh
        done.append(row["path"])
    atomic_write_text(dst / "fiducial_aligned.csv", "path\n" + "".join(f"{p}\n" for p in sorted(done)))
    counts = manifest["status"].value_counts().to_dict()
    return {"images": len(manifest), "detected": int(counts.get(OK, 0)), "fiducial_aligned": len(done),
            "padded": int(pd.to_numeric(manifest.get("padded"), errors="coerce").fillna(0).sum()),
            "missing": len(manifest) - int(counts.get(OK, 0)) - len(done)}
