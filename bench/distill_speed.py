"""Faces embedded per second on one CPU thread: students (our models) vs the teacher, side by side.

    .venv/bin/python bench/distill_speed.py [--models ce-inceptionresnetv1-min5,ce-efficientnet] [--n 256]

The same ``--n`` aligned LFW crops (``cache/aligned/lfw-112``) go through each model's ``embed`` and
through the teacher (re-framed onto its template, then embedded), in batches of 32, no mirror image,
after one warm-up batch; the rounds alternate (``--rounds``) and the best round counts, as the
machine is shared. Printed (and with ``--out`` written to ``distill_speed.md``): faces/s of each and its
ratio to the teacher.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np

from facecore.core.files import write_markdown
from facecore.core.paths import PROJECT_ROOT, project_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="ce-inceptionresnetv1-min5,ce-efficientnet", help="shipped names or .pt files")
    p.add_argument("--teacher", default="dlib")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="", help="folder for distill_speed.md, the printed table (relative to the project root)")
    args = p.parse_args()

    from facecore.evaluation.embed import aligned_input
    from facecore.core.files import list_images, load_rgb
    from facecore.recognition.recognizer import load_model
    from facecore.core.runtime import set_threads
    from facecore.training.teachers import create_teacher

    set_threads(1)
    root = PROJECT_ROOT / "cache" / "aligned" / "lfw-112"
    crops = np.stack([load_rgb(root / f).rgb for f in list_images(root)[: args.n]])
    runners = {}
    for m in args.models.split(","):
        emb = load_model(None if m.endswith(".pt") else m, m if m.endswith(".pt") else None, 0.01, None, "cpu")[0]
        runners[m] = (lambda e: lambda c: e.embed(c, batch_size=32))(emb)
    t = create_teacher(args.teacher)
    runners[f"teacher: {args.teacher}"] = lambda c: t.embed(np.stack([aligned_input(t, x) for x in c]), batch_size=32)
    best = {k: 0.0 for k in runners}
    for fn in runners.values():
        fn(crops[:32])  # warm-up
    for _ in range(args.rounds):
        for k, fn in runners.items():
            start = time.perf_counter()
            fn(crops)
            best[k] = max(best[k], len(crops) / (time.perf_counter() - start))
    teacher = best[f"teacher: {args.teacher}"]
    text = (f"{len(crops)} aligned LFW crops, 1 thread, best of {args.rounds} alternating rounds\n\n"
            "| model | faces/s | x teacher |\n|---|---:|---:|\n"
            + "".join(f"| {k} | {v:.1f} | {v / teacher:.2f}x |\n" for k, v in best.items()))
    print(text, end="")
    if args.out:
        command = shlex.join(["bench/distill_speed.py", *sys.argv[1:]])
        write_markdown(project_path(args.out), "distill_speed", f"`{command}`: {text}", "Faces embedded per second")


if __name__ == "__main__":
    main()
