"""Alignment throughput: facecore's path vs the plain facenet-pytorch loop, side by side.

    python bench/align_throughput.py [--n 1000] [--device cpu] [--threads 0]

Both align the same LFW images and write the crops: ours with ``align_folder`` (batched,
vectorised MTCNN, worker decoding, 5-point similarity warp), the plain loop with one
``MTCNN(...)(img, save_path=...)`` call per image. Prints images/s of each and the ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of LFW images (sorted by path)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for both (0: default)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    from facecore.core.files import list_images
    from facecore.core.runtime import set_threads
    from facecore.detection.folder import align_folder
    from facecore.core.paths import data_path

    if args.threads:
        set_threads(args.threads)
    src = data_path("lfw", "lfw-deepfunneled")
    files = list_images(src)[: args.n]
    print(f"{len(files)} LFW images, device={args.device}, torch threads={torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        # ours (model construction included: it is part of a run)
        t = time.perf_counter()
        m = align_folder(src, Path(tmp) / "ours", device=args.device, batch_size=args.batch_size,
                         num_workers=args.workers, limit=args.n, progress=False)
        ours = time.perf_counter() - t
        found_ours = int((m.status == "ok").sum())
        # the plain loop
        t = time.perf_counter()
        mtcnn = MTCNN(image_size=112, device=args.device)
        found_plain = 0
        for f in files:
            out = Path(tmp) / "plain" / f
            face = mtcnn(Image.open(src / f).convert("RGB"), save_path=str(out))
            found_plain += face is not None
        plain = time.perf_counter() - t
    print(f"facecore align_folder : {len(files) / ours:8.1f} images/s  ({found_ours} faces)")
    print(f"plain facenet loop    : {len(files) / plain:8.1f} images/s  ({found_plain} faces)")
    print(f"ratio                 : {plain / ours:8.2f}x")


if __name__ == "__main__":
    main()
