"""Frames per second of realtime.py's pipeline vs the straightforward loop, side by side in one run.

    .venv/bin/python bench/realtime_fps.py --checkpoint model.pt          # or --model_name NAME

Both runs decode the same clip (default: the demo clip in $FACECORE_DATA), recognise every frame
and draw the overlay; model loading and gallery building are excluded. The straightforward loop
runs MTCNN on every full frame and embeds every face (no tracking); ours is
``facecore.recognition.recognize.Recognizer``. Printed: each one's frames per second, the ratio, how often
our per-frame identity decisions agree with the straightforward loop's (face-frame by face-frame,
faces paired by IoU), and the labelled face-frames per person. Runs alternate (ours, theirs,
ours, ...) when ``--repeats`` > 1, and the fastest run of each is reported.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from facecore.core.files import write_markdown
from facecore.core.paths import PROJECT_ROOT as ROOT
from facecore.core.paths import data_root, project_path


def parse_args() -> argparse.Namespace:
    from facecore.recognition.recognize import RecognizerConfig
    from facecore.recognition.recognizer import REALTIME_FPR

    demo, defaults = data_root() / "demo", RecognizerConfig()  # realtime.py's defaults
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name")
    p.add_argument("--checkpoint")
    p.add_argument("--source", default=str(demo / "short_hamilton_clip.mp4"))
    p.add_argument("--people_faces", default=str(demo / "people_faces"))
    p.add_argument("--threshold", type=float)
    p.add_argument("--fpr", type=float, default=REALTIME_FPR, help="LFW FPR of the checkpoint's threshold (realtime.py --fpr)")
    p.add_argument("--head", action=argparse.BooleanOptionalAction, default=False,
                   help="a distilled student's teacher-space head instead of its backbone (realtime.py --head)")
    p.add_argument("--max_frames", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--detect_every", type=int, default=defaults.detect_every)
    p.add_argument("--search_every", type=int, default=defaults.search_every,
                   help="RecognizerConfig.search_every: frames between detections while nobody is tracked")
    p.add_argument("--embed_every", type=int, default=defaults.embed_every)
    p.add_argument("--detect_side", type=int, default=defaults.detect_side_px)
    p.add_argument("--votes", type=int, default=defaults.votes, help="RecognizerConfig.votes: recent embeddings voting per track")
    p.add_argument("--refine_side", type=int, default=0, help="RecognizerConfig.refine_side_px (0: off)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=defaults.flip,
                   help="RecognizerConfig.flip: embed faces with their mirror image too (both loops)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=defaults.bf16,
                   help="RecognizerConfig.bf16: embed in bfloat16 (both loops; default: where the CPU has it natively)")
    p.add_argument("--cache_dir", default=str(ROOT / "cache" / "gallery"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", default="", help="folder for realtime_fps.md, the printed lines (relative to the project root)")
    return p.parse_args()


def timed_run(source: str, step, max_frames: int | None) -> tuple[list, float]:
    """Per-frame results of ``step(frame)`` over the clip (decode + step + overlay) and the seconds taken."""
    from facecore.recognition.drawing import draw_faces
    from facecore.recognition.video import open_source

    out = []
    src = open_source(source)
    t0 = time.perf_counter()
    for i, frame in enumerate(src):
        if max_frames is not None and i >= max_frames:
            break
        faces = step(frame)
        draw_faces(frame, faces)
        out.append(faces)
    dt = time.perf_counter() - t0
    src.close()
    return out, dt


def main() -> None:
    args = parse_args()
    import torch

    from facecore.core.runtime import set_threads

    set_threads(max(1, args.threads))
    from facecore.detection.detectors import create_detector
    from facecore.recognition.gallery import build_gallery
    from facecore.recognition.recognize import (Recognizer, RecognizerConfig, agreement, embed_bf16, label_changes,
                                                label_counts, recognize_frame)
    from facecore.recognition.recognizer import load_model
    from facecore.recognition.video import open_source

    embedder, threshold, origin = load_model(args.model_name, args.checkpoint, args.fpr, args.threshold, args.device,
                                             args.head)
    gallery = build_gallery(args.people_faces, embedder, cache_dir=args.cache_dir)
    full_detector = create_detector("mtcnn", device=args.device, pad_frac=0.0)  # frames: no padded retry
    cfg = RecognizerConfig(detect_side_px=args.detect_side, detect_every=args.detect_every,
                           search_every=args.search_every, embed_every=args.embed_every,
                           refine_side_px=args.refine_side, votes=args.votes, flip=args.flip, bf16=args.bf16)
    bf16 = embed_bf16(cfg.bf16, args.device)
    # the same face filter and embedding precision in both loops
    both = dict(min_score=cfg.min_score, min_rel_side=cfg.min_rel_side, bf16=bf16)
    src = open_source(args.source)
    warm = next(iter(src))  # warm both paths up once (allocations, lazy imports)
    src.close()
    recognize_frame(warm, full_detector, embedder, gallery, threshold, args.flip, **both)
    Recognizer(embedder, gallery, threshold, cfg).process(warm)

    best: dict[str, tuple[list, float, dict]] = {}
    for _ in range(max(1, args.repeats)):
        rec = Recognizer(embedder, gallery, threshold, cfg)
        ours, t_ours = timed_run(args.source, rec.process, args.max_frames)
        if "ours" not in best or t_ours < best["ours"][1]:
            best["ours"] = (ours, t_ours, dict(rec.counts))
        ref, t_ref = timed_run(args.source, lambda f: recognize_frame(f, full_detector, embedder, gallery, threshold, args.flip, **both),
                               args.max_frames)
        if "ref" not in best or t_ref < best["ref"][1]:
            best["ref"] = (ref, t_ref, {"detections": len(ref), "embedded_faces": sum(map(len, ref))})

    (ours, t_ours, c_ours), (ref, t_ref, c_ref) = best["ours"], best["ref"]
    n = len(ours)
    fps_ours, fps_ref = n / t_ours, n / t_ref
    agr = agreement(ours, ref)
    paired = agr["paired"] or 1
    flick = label_changes(ref)
    lines = [f"clip: {args.source} ({n} frames); gallery: {', '.join(gallery.names) or 'empty'}; "
             f"model {args.checkpoint or args.model_name or 'default'}; threshold {threshold:.3f} ({origin}); "
             f"torch threads {torch.get_num_threads()}; device {args.device}; "
             f"embeddings in {'bfloat16' if bf16 else 'float32'}; flip {args.flip}; best of {max(1, args.repeats)} alternating runs",
             f"straightforward: {fps_ref:6.1f} fps ({t_ref:.2f} s; {c_ref['detections']} full-frame detections, "
             f"{c_ref['embedded_faces']} face embeddings)",
             f"ours:            {fps_ours:6.1f} fps ({t_ours:.2f} s; "
             f"{c_ours.get('detections', 0)} reduced-frame detections, "
             f"{c_ours.get('embedded_faces', 0)} face embeddings, {c_ours.get('cuts', 0)} scene cuts)",
             f"ratio ours / straightforward: {fps_ours / fps_ref:.2f}x",
             f"agreement: {100 * agr['agreement']:.1f}% of {agr['face_frames']} face-frames of the straightforward loop "
             f"(paired with one of ours: {100 * agr['paired'] / max(agr['face_frames'], 1):.1f}%; same name when paired: "
             f"{100 * agr['agree'] / paired:.1f}%; faces only we report: {agr['extra']})",
             f"straightforward loop's own name changes between consecutive frames of a face: {100 * flick['rate']:.1f}% "
             f"of {flick['pairs']} (its flicker; a tracker that votes cannot follow it)"]
    for name, frames in (("ours", ours), ("straightforward", ref)):
        counts = ", ".join(f"{k}: {v}" for k, v in label_counts(frames).items()) or "no faces"
        lines.append(f"labelled face-frames ({name}): {counts}")
    print("\n".join(lines))
    if args.out:
        command = shlex.join(["bench/realtime_fps.py", *sys.argv[1:]])
        bullets = "".join(f"- {line.strip().replace(args.source, Path(args.source).name)}\n" for line in lines)
        write_markdown(project_path(args.out), "realtime_fps", f"`{command}`:\n\n{bullets}",
                       "Frames per second of realtime.py's pipeline")


if __name__ == "__main__":
    main()
