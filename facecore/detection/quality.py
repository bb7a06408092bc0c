"""Independent checks of alignment quality."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import MTCNN

from ..core.files import load_rgb
from .align import eye_centres_error


def eye_alignment_error(crops_dir: str | os.PathLike, outputs: list[str], size: int = 112, n: int = 500,
                        pad: int = 56, seed: int = 0) -> dict:
    """Re-detect eyes on aligned crops with facenet-pytorch's own MTCNN and measure their distance
    from the template's eye points.

    Each crop is padded by ``pad`` px of black on every side (so the face does not fill the frame);
    a sample of ``n`` crops is used. Returns the median, mean and 90th percentile error in pixels.
    """
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(outputs), size=min(n, len(outputs)), replace=False).tolist())
    imgs = []
    for i in pick:
        rgb = load_rgb(Path(crops_dir) / outputs[i], max_side=None).rgb
        if rgb is not None:
            imgs.append(np.pad(rgb, ((pad, pad), (pad, pad), (0, 0))))
    ref = MTCNN(keep_all=True, device="cpu")
    errors, missed = [], 0
    centre = np.array([pad + size / 2, pad + size / 2])
    with torch.inference_mode():
        for s in range(0, len(imgs), 32):
            boxes, _, lms = ref.detect(np.stack(imgs[s:s + 32]), landmarks=True)
            for b, lm in zip(boxes, lms):
                if b is None or len(b) == 0:
                    missed += 1
                    continue
                b = np.asarray(b, np.float32)
                lm = np.asarray(lm, np.float32)  # numpy 2 may hand back object arrays
                j = int(np.argmin(np.linalg.norm((b[:, :2] + b[:, 2:4]) / 2 - centre, axis=1)))
                errors.append(eye_centres_error(lm[j, :2] - pad, size).mean())
    e = np.asarray(errors)
    return {"geometry_n": len(imgs), "geometry_missed": missed,
            "eye_error_median_px": float(np.median(e)) if len(e) else float("nan"),
            "eye_error_mean_px": float(e.mean()) if len(e) else float("nan"),
            "eye_error_p90_px": float(np.percentile(e, 90)) if len(e) else float("nan")}
