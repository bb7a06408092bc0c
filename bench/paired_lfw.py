"""LFW 10-fold accuracy of several models and their fold-paired differences, in one run.

    .venv/bin/python bench/paired_lfw.py --models ce-efficientnet,path/to/arcface.pt --pairs 1:0

Each model (a shipped name or a checkpoint file) goes through the ``lfw`` protocol (flip embeddings
of the aligned crops ``cache/aligned/lfw-112``, cached under ``cache/embeddings``). ``--pairs i:j``
prints model i minus model j fold by fold: the mean difference, its standard error over the 10 folds,
and in how many folds i won; "beats by more than the fold SE" means mean > SE.
"""
from __future__ import annotations

import argparse

from facecore.core.paths import PROJECT_ROOT


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", required=True, help="comma-separated shipped names or .pt files")
    p.add_argument("--pairs", default="", help="comma-separated i:j (indices into --models): i minus j")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    from facecore.evaluation.metrics import paired_difference
    from facecore.networks.models import load_embedder
    from facecore.evaluation.protocols import evaluate
    from facecore.core.runtime import set_threads
    from facecore.core.zoo import shipped_models

    set_threads(args.threads)
    zoo = shipped_models()
    names = args.models.split(",")
    res = []
    print("| # | model | LFW (%) |\n|---:|---|---:|")
    for i, m in enumerate(names):
        emb = load_embedder(zoo[m][0] if m in zoo else m)
        r = evaluate("lfw", emb, aligned_dir=PROJECT_ROOT / "cache" / "aligned" / "lfw-112",
                     cache_dir=PROJECT_ROOT / "cache" / "embeddings", progress=True)
        res.append(r)
        print(f"| {i} | {m} | {100 * r['lfw_acc']:.2f} +- {100 * r['lfw_std']:.2f} |", flush=True)
    for pair in filter(None, args.pairs.split(",")):
        i, j = (int(x) for x in pair.split(":"))
        d = paired_difference(res[i]["accuracies"], res[j]["accuracies"])
        verdict = "more than" if d["mean"] > d["se"] else "not more than"
        print(f"{names[i]} - {names[j]}: {100 * d['mean']:+.2f} +- {100 * d['se']:.2f} points (fold SE), "
              f"better in {d['folds_better']}/{d['folds']} folds: {verdict} the fold SE")


if __name__ == "__main__":
    main()
