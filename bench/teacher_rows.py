"""The benchmark table's rows for teachers only, with their faces/s on one CPU thread.

    .venv/bin/python bench/teacher_rows.py [--teachers openvino-0095,sface,openvino-0095+sface] [--n 256]

Each teacher goes through ``facecore.evaluation.protocols.benchmark_table`` exactly as the benchmarks notebook's
``TEACHERS`` rows do (our aligned 112 px crops re-framed onto its template, flip embeddings added, the
embedding cache under ``--cache_dir``), one thread. A combined teacher (``CombinedTeacher``) listed after
its members takes its cache entries from theirs (``teachers_zoo.fill_combined_cache``): no second pass.
Then faces/s: ``--n`` aligned LFW crops in batches of 32, re-framing included, no mirror image, best of
``--rounds`` after one warm-up batch. Prints a markdown table; ``--out`` also writes it with a CSV.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from facecore.core.files import list_images, load_rgb, write_table
from facecore.core.paths import cache_root, project_path
from facecore.core.runtime import set_threads
from facecore.evaluation.embed import aligned_input
from facecore.evaluation.protocols import benchmark_table, table_markdown
from facecore.training.teachers import create_teacher
from facecore.training.teachers_zoo import CombinedTeacher, fill_combined_cache


def faces_per_s(teacher, crops: np.ndarray, rounds: int) -> float:
    """Best-of-``rounds`` faces/s of re-framing and embedding ``crops`` (ArcFace-template 112 px)."""
    run = lambda c: teacher.embed(np.stack([aligned_input(teacher, x) for x in c]), batch_size=32)  # noqa: E731
    run(crops[:32])
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        run(crops)
        best = max(best, len(crops) / (time.perf_counter() - start))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teachers", default="openvino-0095,sface,openvino-0095+sface")
    p.add_argument("--protocols", default="lfw,cfp-ff,cfp-fp,id-rate", help='facecore.evaluation.protocols names ("": faces/s only)')
    p.add_argument("--cache_dir", default="cache/embeddings")
    p.add_argument("--n", type=int, default=256, help="aligned LFW crops timed per teacher (0: no timing)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="", help="folder for teacher_rows.{csv,md} (relative to the project root)")
    args = p.parse_args()
    set_threads(1)
    cache = project_path(args.cache_dir)
    protocols = [p for p in args.protocols.split(",") if p]  # "": faces/s only
    options = {p: {"cache_dir": cache, **({"fprs": [1e-3, 1e-2]} if p == "id-rate" else {})} for p in protocols}
    rows, speeds = [], {}
    root = cache_root() / "aligned" / "lfw-112"  # where the lfw protocol aligns its crops
    crops = np.stack([load_rgb(root / f).rgb for f in list_images(root)[:args.n]]) if args.n else None
    for name in args.teachers.split(","):
        start = time.perf_counter()
        teacher = create_teacher(name)
        if isinstance(teacher, CombinedTeacher):
            filled = fill_combined_cache(teacher, cache, flip=True)
            print(f"{name}: {filled} cache entries from its members'", flush=True)
        table, _ = benchmark_table({f"teacher: {name}": teacher}, protocols, options=options, reference=False)
        rows.append(table)
        if crops is not None:
            speeds[f"teacher: {name}"] = faces_per_s(teacher, crops, args.rounds)
        print(table_markdown(table), f"({time.perf_counter() - start:.0f} s)", flush=True)
    import pandas as pd

    table = pd.concat(rows, ignore_index=True)
    if speeds:
        table["faces/s (1 thread)"] = table["model"].map(speeds)
    md = table_markdown(table)
    timed = len(crops) if crops is not None else 0
    print(f"\n{timed} aligned LFW crops timed, 1 thread, best of {args.rounds}\n\n{md}")
    if args.out:
        write_table(project_path(args.out), "teacher_rows", table, md,
                    "Teachers (verification accuracy in %, TPR at FPR, ROC-AUC, faces/s)")


if __name__ == "__main__":
    main()
