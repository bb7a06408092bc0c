"""Teacher-space heads on a frozen distilled student: LFW, CFP-FF and CFP-FP with each head, side by side.

    .venv/bin/python bench/experiments/teacher_head.py --student runs/train/distill/best.pt \\
        --data_dir cache/aligned/celeba-112 --unlabelled_dir cache/aligned/unlabelled-112 \\
        --cache_dir cache/crops --heads none,linear,mlp:512,mlp:1024

The student (a head-less checkpoint, weights rounded to ``--mantissa_bits`` as they ship) embeds the
training crops once (``facecore.training.distill.head_data``: the run's training split plus the unlabelled crops,
the teacher's raw targets from its cache); each head is fitted on them (``facecore.networks.heads.fit_head``, the
same seed) and applied to the student's embeddings of the aligned LFW and CFP crops and their mirrors
(flip-averaged after the head, as ``Embedder.embed`` does). Printed: each head's mean cosine to the
teacher on the held-out validation crops, its 10-fold accuracies and its LFW difference from the
student without a head, paired by fold.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecore.core.paths import PROJECT_ROOT


def _both(student, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The student's unit embeddings of aligned crops and of their mirrors."""
    from facecore.core.files import load_rgb

    crops = np.stack([load_rgb(f).rgb for f in files])
    return student.embed(crops), student.embed(np.ascontiguousarray(crops[:, :, ::-1]))


def _pair_sets(data_root: Path) -> dict:
    """{protocol: (files, (i1, i2, issame, folds))} for LFW, CFP-FF and CFP-FP on the aligned crops."""
    from facecore.evaluation.protocols import cfp_protocol
    from facecore.evaluation.lfw import lfw_protocol

    aligned = PROJECT_ROOT / "cache" / "aligned"
    out = {"LFW": lfw_protocol(str(aligned / "lfw-112"), str(data_root / "lfw" / "pairs.txt"))}
    for proto in ("FF", "FP"):
        files, rows = cfp_protocol(data_root / "cfp", proto)
        out[f"CFP-{proto}"] = ([str(aligned / "cfp-112" / f) for f in files], rows)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", required=True, help="a head-less student checkpoint (a distillation run's best.pt)")
    p.add_argument("--data_dir", required=True, help="the run's labelled aligned crops")
    p.add_argument("--unlabelled_dir", default="", help="the run's unlabelled aligned crops")
    p.add_argument("--cache_dir", required=True, help="the run's cache_dir (crops and teacher targets)")
    p.add_argument("--min_images", type=int, default=5)
    p.add_argument("--teacher", default="dlib")
    p.add_argument("--heads", default="none,linear,mlp:512,mlp:1024", help="none, linear or mlp:HIDDEN")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--mantissa_bits", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    from facecore.training.distill import head_agreement, head_data
    from facecore.networks.heads import fit_head
    from facecore.evaluation.metrics import paired_difference
    from facecore.core.paths import data_root, project_path
    from facecore.evaluation.protocols import pair_result
    from facecore.core.runtime import set_threads
    from facecore.training.teachers import create_teacher

    set_threads(args.threads)
    teacher = create_teacher(args.teacher, **({"framing": "ours"} if args.teacher == "dlib" else {}))
    d = head_data(project_path(args.student), project_path(args.data_dir), teacher, project_path(args.cache_dir),
                  project_path(args.unlabelled_dir) if args.unlabelled_dir else None, args.min_images,
                  mantissa_bits=args.mantissa_bits)
    sets = {name: (_both(d.student, files), rows) for name, (files, rows) in _pair_sets(data_root()).items()}
    print(f"fitted on {len(d.features)} training crops; validation: {len(d.val_features)} crops\n")
    print("| head | cos to teacher (val) | LFW (%) | LFW vs no head (points, fold SE, folds better) "
          "| CFP-FF (%) | CFP-FP (%) |\n|---|---:|---:|---|---:|---:|")
    base = None
    for spec in args.heads.split(","):
        kind, _, hidden = spec.partition(":")
        head = None if kind == "none" else fit_head(d.features, d.targets, kind, int(hidden or 512), args.epochs,
                                                    progress=False)
        apply = (lambda e: e) if head is None else (lambda e, h=head: h(torch.as_tensor(e)).detach().numpy())
        res = {}
        for name, ((a, b), (i1, i2, same, folds)) in sets.items():
            e = F.normalize(F.normalize(torch.as_tensor(apply(a)), dim=1) + F.normalize(torch.as_tensor(apply(b)), dim=1),
                            dim=1).numpy()
            res[name] = pair_result(e, i1, i2, same, folds)
        base = base or res["LFW"]
        diff = paired_difference(res["LFW"]["accuracies"], base["accuracies"])
        cos = float("nan") if head is None else head_agreement(head, d.val_features, d.val_targets)
        print(f"| {spec} | {cos:.4f} | {100 * res['LFW']['mean']:.2f} +- {100 * res['LFW']['std']:.2f} "
              f"| {100 * diff['mean']:+.2f} +- {100 * diff['se']:.2f}, {diff['folds_better']}/10 "
              f"| {100 * res['CFP-FF']['mean']:.2f} | {100 * res['CFP-FP']['mean']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
