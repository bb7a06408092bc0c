"""Real-time face recognition on a webcam, a video file or a folder of images.

    python realtime.py --model_name NAME                     # webcam 0, window if there is a screen
    python realtime.py --source clip.mp4 --output_path gifs/out.gif --no-display

Faces are matched against the gallery in ``--people_faces`` (one folder or one photo per person;
see people_faces/README.md). Each face gets a box, the best-matching name and its cosine
similarity, or ``Unknown`` below ``--threshold`` (default: the checkpoint's threshold calibrated on
LFW at ``--fpr``, 0.01). The pipeline (facecore.recognize.Recognizer) detects on a reduced frame
every few frames (every frame while nobody is tracked), follows faces with optical flow in between,
and re-embeds each track every few frames (with its mirror image); the latest embedding names it.
Bad input (camera, video, output folder, model name) exits with code 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = "../shared/data"
# Default operating point: the threshold at which 1 % of LFW's mismatched pairs pass. With the
# default model, 3 % names an audience member on the demo clip (similarity 0.40 vs a threshold of
# 0.385), while 1 % (0.456) still names the performer's close-ups (0.46-0.76); see README
# "Real-time recognition".
REALTIME_FPR = 0.01


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from facecore.recognize import RecognizerConfig

    DEFAULTS = RecognizerConfig()  # noqa: N806 - the pipeline's defaults, stated once in facecore
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name", help="a shipped model from config.params (default: config.DEFAULT_MODEL)")
    p.add_argument("--checkpoint", help="a facecore checkpoint file instead of a shipped model")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cam", type=int, help="camera index (default 0 when no --source is given)")
    src.add_argument("--source", help="a video file or a folder of images")
    p.add_argument("--people_faces", default=str(ROOT / "people_faces"), help="gallery folder (default people_faces/)")
    p.add_argument("--output_path", help="write the annotated video as .gif or .mp4")
    p.add_argument("--output_width", type=int, help="output width in px (default: 320 for .gif, frame width for .mp4)")
    p.add_argument("--output_fps", type=float, help="output frame rate (default: 10 for .gif, the source's for .mp4)")
    p.add_argument("--landmarks", action=argparse.BooleanOptionalAction, default=True, help="draw the 5 landmarks")
    p.add_argument("--threshold", type=float,
                   help="cosine similarity below which a face is Unknown (default: the checkpoint's threshold "
                        "calibrated on LFW at --fpr; without one 0.4, with a warning)")
    p.add_argument("--fpr", type=float, default=REALTIME_FPR,
                   help=f"the LFW false-positive rate whose calibrated threshold is used (default {REALTIME_FPR}; "
                        "stored for 0.001, 0.003, 0.01, 0.03, 0.05, 0.1)")
    p.add_argument("--max_frames", type=int, help="stop after this many frames")
    p.add_argument("--display", action=argparse.BooleanOptionalAction, default=None,
                   help="show a window (default: when a screen is available); q or Esc quits")
    p.add_argument("--report_json", help="write per-frame faces and per-person counts as JSON")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the networks are small, and on a busy CPU more threads "
                        "wait on each other: 10x slower measured on 2 shared cores)")
    p.add_argument("--detect_every", type=int, default=DEFAULTS.detect_every,
                   help=f"frames between detections while a face is tracked (default {DEFAULTS.detect_every})")
    p.add_argument("--embed_every", type=int, default=DEFAULTS.embed_every,
                   help=f"frames between re-embeddings of a face (default {DEFAULTS.embed_every})")
    p.add_argument("--detect_side", type=int, default=DEFAULTS.detect_side_px,
                   help=f"longer side (px) of the frame the detector sees (default {DEFAULTS.detect_side_px}: "
                        "a 640x360 clip at full size)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=DEFAULTS.flip,
                   help="embed each face with its mirror image too, as the calibrated thresholds were "
                        "(default on; --no-flip halves the embedding work)")
    p.add_argument("--cache_dir", default=str(ROOT / "cache" / "gallery"), help="gallery embedding cache")
    return p.parse_args(argv)


def data_path(path: str) -> Path:
    """``path``; one under the default data folder (../shared/data/...) that is absent is looked up
    under ``$FACECORE_DATA`` instead, so `make demo`'s command works wherever the data lives."""
    p = Path(path)
    env = os.environ.get("FACECORE_DATA")
    parts = Path(DEFAULT_DATA).parts
    if not p.exists() and env and p.parts[: len(parts)] == parts:
        return Path(env).expanduser().joinpath(*p.parts[len(parts):])
    return p


def resolve_checkpoint(args: argparse.Namespace) -> Path:
    """The checkpoint to load: --checkpoint, else --model_name or config.DEFAULT_MODEL via config.params."""
    if args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise UsageError(f"--checkpoint {args.checkpoint}: no such file")
        return Path(args.checkpoint)
    sys.path.insert(0, str(ROOT))
    import config

    name = args.model_name or config.DEFAULT_MODEL
    if name is None:
        raise UsageError("no model: config.DEFAULT_MODEL is unset and no --model_name was given; "
                         f"valid names: {', '.join(sorted(config.params)) or '(none shipped yet)'}; "
                         "or pass --checkpoint PATH")
    try:
        path = config.checkpoint_path(name)
    except KeyError as e:
        raise UsageError(f"--model_name: {e.args[0]}") from None
    if not path.is_file():
        raise UsageError(f"model {name!r}: checkpoint {path} is missing (config.params); train or fetch it first")
    return path


def load_model(args: argparse.Namespace):
    """(embedder, threshold, where the threshold comes from)."""
    import torch

    from facecore.models import load_embedder
    from facecore.recognize import FALLBACK_THRESHOLD

    torch.set_num_threads(max(1, args.threads))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU here; use --device cpu")
    path = resolve_checkpoint(args)
    try:
        embedder = load_embedder(path, device=args.device)
    except (FileNotFoundError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise UsageError(f"checkpoint: {first if len(first) < 160 else first[:157] + '...'}") from None
    meta = embedder.meta
    if args.threshold is not None:
        return embedder, args.threshold, "--threshold"
    table = meta.get("thresholds_by_fpr") or {}
    if table:
        match = [k for k in table if math.isclose(float(k), args.fpr, rel_tol=1e-6)]
        if not match:
            raise UsageError(f"--fpr {args.fpr}: {path.name} stores thresholds for FPR "
                             f"{', '.join(sorted(table, key=float))}; pick one or pass --threshold")
        return embedder, float(table[match[0]]), f"checkpoint, calibrated on LFW at FPR {float(match[0]):g}"
    if meta.get("threshold") is not None:
        fpr = meta.get("threshold_fpr")
        warnings.warn(f"{path.name} stores one threshold (LFW FPR {fpr}), not a table; --fpr is ignored", UserWarning)
        return embedder, float(meta["threshold"]), f"checkpoint, calibrated on LFW at FPR {fpr}"
    warnings.warn(f"{path} stores no calibrated threshold (meta['threshold']); using the fallback "
                  f"{FALLBACK_THRESHOLD} (set --threshold to override)", UserWarning)
    return embedder, FALLBACK_THRESHOLD, "fallback"


def open_input(args: argparse.Namespace):
    from facecore.video import open_camera, open_source

    if args.source is not None:
        return open_source(data_path(args.source))
    return open_camera(args.cam if args.cam is not None else 0)


def check_args(args: argparse.Namespace) -> None:
    """UsageError for a number out of range or an output folder that does not exist."""
    for name, low in (("threads", 1), ("detect_every", 1), ("embed_every", 1), ("detect_side", 48),
                      ("output_width", 2), ("max_frames", 0)):
        v = getattr(args, name)
        if v is not None and v < low:
            raise UsageError(f"--{name} {v}: must be at least {low}")
    if args.output_fps is not None and not args.output_fps > 0:
        raise UsageError(f"--output_fps {args.output_fps}: must be positive")
    if args.report_json and not Path(args.report_json).parent.resolve().is_dir():
        raise UsageError(f"--report_json {args.report_json}: folder does not exist")


def run(args: argparse.Namespace) -> dict:
    """Check the input, process the source, and return the report (also written to --report_json)."""
    from facecore import video  # no torch: bad input is reported before the slow imports

    check_args(args)
    try:
        out_path = video.check_output_path(args.output_path) if args.output_path else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    people = data_path(args.people_faces)
    if not people.is_dir():
        raise UsageError(f"--people_faces {people}: no such folder (one sub-folder or photo per person)")
    resolve_checkpoint(args)  # a bad model name fails before the camera or video is opened
    source = open_input(args)
    try:
        embedder, threshold, origin = load_model(args)
        from facecore.gallery import build_gallery
        from facecore.recognize import Recognizer, RecognizerConfig

        gallery = build_gallery(people, embedder, cache_dir=args.cache_dir)
        print(f"source: {source.description}; gallery: {len(gallery)} people ({', '.join(gallery.names) or 'none'}); "
              f"threshold {threshold:.3f} ({origin})", flush=True)
        cfg = RecognizerConfig(detect_side_px=args.detect_side, detect_every=args.detect_every,
                               embed_every=args.embed_every, flip=args.flip)
        rec = Recognizer(embedder, gallery, threshold, cfg)
        report = {"source": source.description, "people": gallery.names, "threshold": threshold,
                  "threshold_origin": origin}
        report.update(process(args, source, rec, out_path))
    finally:
        source.close()
    return report


def want_display(args: argparse.Namespace) -> bool:
    """--display as asked, or whether there is a screen; asked for without one: a warning."""
    from facecore.video import screen_available

    if args.display and not screen_available():
        warnings.warn("--display: no screen found (DISPLAY is unset); running without a window", UserWarning)
        return False
    return screen_available() if args.display is None else args.display


def process(args: argparse.Namespace, source, rec, out_path: Path | None) -> dict:
    """The frame loop: recognise, draw, write, show; Ctrl-C (or q in the window) ends it cleanly."""
    from collections import Counter

    from facecore import video

    display = want_display(args)
    gif = out_path is not None and out_path.suffix.lower() == ".gif"
    writer = video.OutputWriter(out_path, args.output_fps or (10.0 if gif else source.fps)) if out_path else None
    out_w, size = args.output_width or (320 if gif else None), None
    counts, per_frame, meter, n, ok = Counter(), [], video.FpsMeter(), 0, False
    t_start = time.perf_counter()
    try:
        for i, frame in enumerate(source):
            if args.max_frames is not None and i >= args.max_frames:
                break
            faces = rec.process(frame)
            fps = meter.tick()
            fps = fps if math.isfinite(fps) else None
            n += 1
            counts.update(f.name for f in faces)
            if args.report_json:
                per_frame.append({"index": i, "faces": [face_record(f) for f in faces]})
            t = time.perf_counter() - t_start if source.live else i / source.fps
            if writer is not None and writer.wants(t):
                size = size or video.output_size(frame.shape[:2], out_w)  # the first frame's, for all
                small = video.resize_frame(frame, size)
                writer.write(video.draw_faces(small, faces, size[0] / frame.shape[1], args.landmarks, fps))
            if display and not show(video.draw_faces(frame, faces, 1.0, args.landmarks, fps)):
                break
        ok = True
    except KeyboardInterrupt:
        ok = True
    finally:
        if writer is not None:
            writer.close(keep=ok)
    elapsed = time.perf_counter() - t_start
    out = {"frames_processed": n, "seconds": round(elapsed, 3), "fps": round(n / elapsed, 2) if elapsed > 0 else None,
           "pipeline": dict(rec.counts), "face_frames": dict(counts.most_common())}
    if writer is not None:
        out["output"] = {"path": str(out_path), "frames": writer.frames_written, "fps": writer.fps}
    if args.report_json:
        out["frames"] = per_frame
    return out


def face_record(f) -> dict:
    """One face of the report: track id, name, similarity (None if not embedded yet), box."""
    sim = round(float(f.similarity), 4) if math.isfinite(f.similarity) else None
    return {"track": f.track_id, "name": f.name, "similarity": sim, "box": [round(float(v), 1) for v in f.box]}


def show(frame_rgb) -> bool:
    """Show a frame; False when the user pressed q or Esc."""
    import cv2

    cv2.imshow("facecore realtime (q quits)", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.showwarning = _one_line_warning
    from facecore.files import atomic_write_text
    from facecore.video import SourceError

    try:
        report = run(args)
    except (UsageError, SourceError) as e:
        print(f"realtime.py: error: {e}", file=sys.stderr)
        return 2
    if args.report_json:
        atomic_write_text(args.report_json, json.dumps(report, indent=1))
    counts = ", ".join(f"{k}: {v}" for k, v in report["face_frames"].items()) or "no faces"
    print(f"{report['frames_processed']} frames in {report['seconds']:.1f} s ({report['fps']} fps end to end); "
          f"labelled face-frames: {counts}")
    if "output" in report:
        out = report["output"]
        print(f"wrote {out['path']} ({out['frames']} frames at {out['fps']:g} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
