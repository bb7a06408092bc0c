"""Real-time face recognition on a webcam, a video file or a folder of images.

    python realtime.py --model_name NAME                     # webcam 0, window if there is a screen
    python realtime.py --source clip.mp4 --output_path gifs/out.gif --no-display

Faces are matched against the gallery in ``--people_faces`` (one folder or one photo per person;
see people_faces/README.md). Each face gets a box, the best-matching name and its cosine
similarity, or ``Unknown`` below ``--threshold`` (default: the checkpoint's threshold calibrated on
LFW at ``--fpr``, 0.01). The pipeline (facecore.recognition.recognize.Recognizer) detects on a reduced frame
every few frames (every frame while nobody is tracked), follows faces with optical flow in between,
and re-embeds each track every few frames (with its mirror image); the latest embedding names it.
Bad input (camera, video, an output that cannot be written, model name, threshold, nothing to
show or write) exits with code 2 and one line on stderr, before anything is loaded where it can.
Ctrl-C, SIGTERM or q end the run cleanly: the frames processed so far are written to the output
and the report (exit 0); a second signal while they are written is ignored, so no temporary file
is left. The model and threshold come from ``facecore.recognition.recognizer`` (``Recognizer.from_name``).
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from facecore.recognition.recognizer import REALTIME_FPR, ModelChoiceError, input_path

ROOT = Path(__file__).resolve().parent


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from facecore.recognition.recognize import RecognizerConfig

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
    p.add_argument("--head", action=argparse.BooleanOptionalAction, default=False,
                   help="a distilled student with a teacher-space head: match with the head's embedding and thresholds "
                        "(default: its backbone's own; README, Real-time recognition)")
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
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=DEFAULTS.bf16,
                   help="embed faces in bfloat16 on the CPU (default: where the CPU has it natively, "
                        "AVX512-BF16 or AMX; elsewhere it is emulated and slower)")
    p.add_argument("--min_score", type=float, default=DEFAULTS.min_score,
                   help=f"drop detections scored below this (default {DEFAULTS.min_score}: MTCNN's 0.7 boxes hair, "
                        "hands and dark background in video; 0: keep all)")
    p.add_argument("--min_rel_side", type=float, default=DEFAULTS.min_rel_side,
                   help=f"drop boxes smaller than this share of the frame's largest face (default {DEFAULTS.min_rel_side}; 0: keep all)")
    p.add_argument("--cache_dir", default=str(ROOT / "cache" / "gallery"), help="gallery embedding cache")
    return p.parse_args(argv)


def resolve_checkpoint(args: argparse.Namespace) -> Path:
    """The checkpoint to load (``facecore.recognition.recognizer.resolve_checkpoint``), UsageError if none."""
    from facecore.recognition.recognizer import resolve_checkpoint as resolve

    try:
        return resolve(args.model_name, args.checkpoint)
    except ModelChoiceError as e:
        raise UsageError(str(e)) from None


def load_model(args: argparse.Namespace):
    """(embedder, threshold, where the threshold comes from): ``facecore.recognition.recognizer.load_model``."""
    import torch

    from facecore.recognition.recognizer import load_model as load
    from facecore.core.runtime import set_threads

    set_threads(max(1, args.threads))
    try:
        return load(args.model_name, args.checkpoint, args.fpr, args.threshold, args.device, args.head)
    except ModelChoiceError as e:
        raise UsageError(str(e)) from None


def open_input(args: argparse.Namespace):
    from facecore.recognition.video import open_camera, open_source

    if args.source is not None:
        return open_source(input_path(args.source))
    return open_camera(args.cam if args.cam is not None else 0)


def check_args(args: argparse.Namespace) -> Path | None:
    """UsageError for a number out of range, a threshold that is no cosine, an output that cannot be
    written, or a run that would neither show nor write anything; returns the checked output path."""
    from facecore.recognition import video
    from facecore.recognition.recognizer import check_threshold

    for name, low in (("threads", 1), ("detect_every", 1), ("embed_every", 1), ("detect_side", 48),
                      ("output_width", 2), ("max_frames", 0)):
        v = getattr(args, name)
        if v is not None and v < low:
            raise UsageError(f"--{name} {v}: must be at least {low}")
    if args.output_fps is not None and not (math.isfinite(args.output_fps) and args.output_fps > 0):
        raise UsageError(f"--output_fps {args.output_fps}: must be positive")
    if not (math.isfinite(args.fpr) and 0 < args.fpr < 1):
        raise UsageError(f"--fpr {args.fpr}: must be a rate between 0 and 1")
    for name in ("min_score", "min_rel_side"):
        v = getattr(args, name)
        if not (math.isfinite(v) and 0 <= v <= 1):
            raise UsageError(f"--{name} {v}: must be between 0 and 1 (0 switches the filter off)")
    try:
        check_threshold(args.threshold)
        out = video.check_output_path(args.output_path) if args.output_path else None
        if args.report_json:
            video.check_writable(args.report_json, "--report_json")
        if args.report_json and out is not None and Path(args.report_json).resolve() == out.resolve():
            raise ValueError(f"--report_json {args.report_json}: is also --output_path; give two file names")
        if args.cache_dir:
            cache = Path(args.cache_dir)
            if cache.exists() and not cache.is_dir():
                raise ValueError(f"--cache_dir {cache}: is a file; give a folder")
            video.check_writable(_existing(cache) / "x", "--cache_dir")
    except ValueError as e:
        raise UsageError(str(e)) from None
    if out is None and not args.report_json and not want_display(args):
        raise UsageError("nothing to show or write: no screen (or --no-display) and no --output_path or "
                         "--report_json; add --output_path out.gif or --report_json report.json")
    return out


def _existing(folder: Path) -> Path:
    """The nearest existing folder at or above ``folder`` (where the cache would be created)."""
    folder = folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def run(args: argparse.Namespace) -> dict:
    """Check the input, process the source, and return the report (also written to --report_json)."""
    out_path = check_args(args)  # no torch: bad input is reported before the slow imports
    people = input_path(args.people_faces)
    if not people.is_dir():
        raise UsageError(f"--people_faces {people}: no such folder (one sub-folder or photo per person)")
    resolve_checkpoint(args)  # a bad model name fails before the camera or video is opened
    source = open_input(args)
    try:
        import torch

        from facecore.recognition.recognize import Recognizer, RecognizerConfig
        from facecore.core.runtime import set_threads

        set_threads(max(1, args.threads))
        cfg = RecognizerConfig(detect_side_px=args.detect_side, detect_every=args.detect_every,
                               embed_every=args.embed_every, flip=args.flip, min_score=args.min_score,
                               min_rel_side=args.min_rel_side, bf16=args.bf16)
        try:
            rec = Recognizer.from_name(args.model_name, people, fpr=args.fpr, threshold=args.threshold,
                                       checkpoint=args.checkpoint, device=args.device, config=cfg,
                                       cache_dir=args.cache_dir, head=args.head)
        except ModelChoiceError as e:
            raise UsageError(str(e)) from None
        gallery, threshold = rec.gallery, rec.threshold
        print(f"source: {source.description}; gallery: {len(gallery)} people ({', '.join(gallery.names) or 'none'}); "
              f"threshold {threshold:.3f} ({rec.threshold_origin})", flush=True)
        report = {"source": source.description, "people": gallery.names, "threshold": threshold,
                  "threshold_origin": rec.threshold_origin}
        report.update(process(args, source, rec, out_path))
    finally:
        source.close()
    return report


def want_display(args: argparse.Namespace) -> bool:
    """--display as asked, or whether there is a screen; asked for without one: a warning (once)."""
    from facecore.recognition.video import screen_available

    if args.display and not screen_available():
        warnings.warn("--display: no screen found (DISPLAY is unset); running without a window", UserWarning)
        args.display = False
    return screen_available() if args.display is None else args.display


def process(args: argparse.Namespace, source, rec, out_path: Path | None) -> dict:
    """The frame loop: recognise, draw, write, show; Ctrl-C (or q in the window) ends it cleanly."""
    from collections import Counter

    from facecore.recognition import video

    display = want_display(args)
    gif = out_path is not None and out_path.suffix.lower() == ".gif"
    writer = video.OutputWriter(out_path, args.output_fps or (10.0 if gif else source.fps)) if out_path else None
    out_w, size = args.output_width or (320 if gif else None), None
    counts, per_frame, meter, n, ok, stopped_by = Counter(), [], video.FpsMeter(), 0, False, None
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
    except KeyboardInterrupt as e:
        ok, stopped_by = True, str(e) or "SIGINT"
    finally:
        with signals_deferred():  # a second Ctrl-C or SIGTERM must not leave a half-written temporary file
            if writer is not None:
                writer.close(keep=ok)
    elapsed = time.perf_counter() - t_start
    out = {"frames_processed": n, "seconds": round(elapsed, 3), "fps": round(n / elapsed, 2) if elapsed > 0 else None,
           "pipeline": dict(rec.counts), "face_frames": dict(counts.most_common()), "stopped_by": stopped_by}
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


class Stop(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM: the loop ends and what was processed is written."""


_STOPPING: list[int] = []


def _stop(signum, frame) -> None:
    """The first signal stops the run; later ones are ignored (outputs are being finished)."""
    if not _STOPPING:
        _STOPPING.append(signum)
        raise Stop(signal.Signals(signum).name)


@contextmanager
def signals_deferred():
    """SIGINT and SIGTERM are noted, not acted on, while outputs are finished."""
    got = []
    old = {s: signal.signal(s, lambda n, f: got.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.showwarning = _one_line_warning
    _STOPPING.clear()
    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(args)
    finally:
        for s, h in old.items():
            # after a stop, the signals that follow are ignored up to the process's exit (Python's
            # shutdown would otherwise restore the default action, which kills with -SIGINT/-SIGTERM)
            signal.signal(s, signal.SIG_IGN if _STOPPING else h)


def _main(args: argparse.Namespace) -> int:
    from facecore.core.files import atomic_write_text
    from facecore.recognition.video import SourceError

    try:
        report = run(args)
    except (UsageError, ModelChoiceError, SourceError) as e:
        print(f"realtime.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"realtime.py: stopped ({e or 'SIGINT'}) before the first frame; nothing written", file=sys.stderr)
        return 130
    if report.get("stopped_by"):
        print(f"stopped by {report['stopped_by']}; writing what was processed", flush=True)
    if args.report_json:
        with signals_deferred():
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
