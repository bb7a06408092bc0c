"""Does a threshold calibrated on one set keep its FPR on others? One model, four sets.

    .venv/bin/python bench/calibration.py [--model_name NAME | --checkpoint PATH] [--out bench/results]

The model is loaded as realtime.py loads it (``facecore.recognition.recognizer.load_model``: a distilled
student's backbone alone unless ``--head``). For FPR 1e-3 and 1e-2, each calibration set (LFW's mismatched
pairs, the CelebA held-out identities' different-identity pairs, CFP-FF's and CFP-FP's different pairs,
their union, the strictest of the four, and the threshold the checkpoint stores) gives a threshold;
the table shows the FPR it realises and the TPR of the genuine pairs on every set
(``facecore.evaluation.calibration``). One thread; embeddings cached under ``--cache_dir``.
Prints markdown tables; ``--out`` also writes ``calibration.{md,csv}``.
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from facecore.core.files import write_table
from facecore.core.paths import project_path
from facecore.core.runtime import set_threads
from facecore.evaluation.calibration import LABELS, SETS, calibration_sets, calibration_table
from facecore.recognition.recognizer import ModelChoiceError, cli_message, load_model

FPRS = (1e-3, 1e-2)


def markdown(table: pd.DataFrame, sims: dict) -> str:
    """One markdown table per FPR (FPR and TPR in %), then the sets' sizes."""
    out = []
    for f, part in table.groupby("fpr", sort=True):
        cols = [c for c in part.columns if c not in ("fpr", "calibrated on", "threshold")]
        out += [f"**Target FPR {f:g}** (realised FPR and TPR in %; the diagonal is in-sample)", "",
                "| calibrated on | threshold | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
        for _, r in part.iterrows():
            out.append(f"| {r['calibrated on']} | {r['threshold']:.4f} | "
                       + " | ".join(f"{100 * r[c]:.2f}" for c in cols) + " |")
        out.append("")
    out += ["| set | images | genuine pairs | impostor pairs |", "|---|---:|---:|---:|"]
    out += [f"| {LABELS[s]} | {p.images:,} | {len(p.pos):,} | {len(p.neg):,} |" for s, p in sims.items()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model_name", default=None, help="a shipped model (default: the default model)")
    g.add_argument("--checkpoint", default=None, help="a checkpoint file")
    p.add_argument("--head", action="store_true", help="a distilled student's teacher-space head, not its backbone")
    p.add_argument("--cache_dir", default="cache/embeddings")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="", help="folder for calibration.{csv,md} (relative to the project root)")
    a = p.parse_args(argv)
    if a.threads < 1:
        print(f"calibration: --threads {a.threads}: must be at least 1", file=sys.stderr)
        return 2
    set_threads(a.threads)
    try:
        embedder, _, _ = load_model(a.model_name, a.checkpoint, head=a.head)
    except ModelChoiceError as e:
        print(cli_message(str(e)), file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        sims = calibration_sets(embedder, SETS, cache_dir=project_path(a.cache_dir))
    except FileNotFoundError as e:
        print(f"calibration: {e}", file=sys.stderr)
        return 2
    stored = embedder.meta.get("thresholds_by_fpr") or {}
    extra = {"checkpoint (stored)": stored} if all(str(f) in stored for f in FPRS) else {}
    table = calibration_table(sims, FPRS, extra)
    name = a.checkpoint or a.model_name or "default model"
    md = (f"Model: {name} ({'head' if a.head else 'backbone, as realtime.py matches'}); "
          f"{a.threads} thread(s), {time.perf_counter() - start:.0f} s.\n\n" + markdown(table, sims))
    print(md)
    if a.out:
        write_table(project_path(a.out), "calibration", table, md,
                    "Threshold calibration: realised FPR and TPR of each calibration set's threshold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
