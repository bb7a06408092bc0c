"""Faces found in photos cropped tightly around the face: no retry vs the padded retry (black or edge).

    .venv/bin/python bench/experiments/tight_crops.py --n 400

Tight crops: LFW and CFP frontal photos cut to MTCNN's own box of the face (from the aligned
manifests in cache/aligned, made by the alignment stage and the CFP protocols), the same boxes shrunk
by 10 % of their size on each side, and CFP profile photos cut to the bounding box of their
hand-marked fiducials (jaw, brow, eye, nose, mouth: the visible half-face). CFP frontal fiducials
mark one half of the face only, so their box is no face crop and is not used. Each crop is searched with ``FaceDetector`` at
``pad_frac=0`` (no retry) and with the retry on a border of ``--pad_frac`` of the shorter side, black
(``constant``) or edge-replicated (``edge``). Printed: the share of crops with a face found per set
and setting, side by side in one run.
"""
from __future__ import annotations

import argparse

import numpy as np

from facecore.core.paths import PROJECT_ROOT, data_root


def box_crops(aligned: str, source, n: int, seed: int, shrink: float = 0.0, where: str = "") -> list[np.ndarray]:
    """Up to ``n`` photos cut to the face box an alignment manifest records, shrunk by ``shrink`` of
    the box size on each side; ``where``: a substring the path must contain."""
    from facecore.core.files import load_rgb
    from facecore.detection.folder import read_manifest

    m = read_manifest(PROJECT_ROOT / "cache" / "aligned" / aligned)
    m = m[(m.status == "ok") & m.path.str.contains(where, regex=False)]
    m = m.sample(min(n, len(m)), random_state=seed)
    out = []
    for _, r in m.iterrows():
        img = load_rgb(source / r.path, max_side=None).rgb
        dx, dy = shrink * (r.x2 - r.x1), shrink * (r.y2 - r.y1)
        out.append(_cut(img, (r.x1 + dx, r.y1 + dy, r.x2 - dx, r.y2 - dy)))
    return out


def cfp_crops(n: int, kind: str, seed: int) -> list[np.ndarray]:
    """Up to ``n`` CFP photos of ``kind`` (frontal/profile) cut to their fiducials' bounding box."""
    from facecore.evaluation.cfp import read_fiducials
    from facecore.core.files import load_rgb

    root = data_root() / "cfp"
    fid = read_fiducials(str(root))
    names = sorted(k for k in fid if f"/{kind}/" in k)
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.choice(names, min(n, len(names)), replace=False):
        p = fid[k]
        out.append(_cut(load_rgb(root / k, max_side=None).rgb, (*p.min(0), *p.max(0))))
    return out


def _cut(img: np.ndarray, box) -> np.ndarray:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
    return np.ascontiguousarray(img[y1:y2, x1:x2])


def found_rate(crops: list[np.ndarray], pad_frac: float, pad_mode: str) -> tuple[float, int]:
    from facecore.detection.detectors import create_detector

    det = create_detector("mtcnn", pad_frac=pad_frac, pad_mode=pad_mode)
    found = sum(len(d) > 0 for s in range(0, len(crops), 32) for d in det.detect(crops[s:s + 32]))
    return found / len(crops), found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=400, help="crops per set")
    p.add_argument("--pad_frac", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from facecore.core.runtime import set_threads

    set_threads(args.threads)
    lfw, cfp = data_root() / "lfw" / "lfw-deepfunneled", data_root() / "cfp" / "images"
    sets = {"LFW, MTCNN box": box_crops("lfw-112", lfw, args.n, args.seed),
            "LFW, box shrunk 10 %": box_crops("lfw-112", lfw, args.n, args.seed, 0.1),
            "CFP frontal, MTCNN box": box_crops("cfp-112", cfp, args.n, args.seed, where="/frontal/"),
            "CFP frontal, box shrunk 10 %": box_crops("cfp-112", cfp, args.n, args.seed, 0.1, "/frontal/"),
            "CFP profile, fiducial box": cfp_crops(args.n, "profile", args.seed)}
    settings = [("no retry", 0.0, "constant"), (f"retry, black border {args.pad_frac:g}", args.pad_frac, "constant"),
                (f"retry, edge border {args.pad_frac:g}", args.pad_frac, "edge")]
    print(f"{'set':30s} {'crops':>6s} " + " ".join(f"{name:>26s}" for name, _, _ in settings))
    for label, crops in sets.items():
        cells = []
        for _, frac, mode in settings:
            rate, k = found_rate(crops, frac, mode)
            cells.append(f"{100 * rate:6.1f} % ({k:4d})".rjust(26))
        print(f"{label:30s} {len(crops):6d} " + " ".join(cells))


if __name__ == "__main__":
    main()
