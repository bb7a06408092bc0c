"""Real-time face recognition on a webcam, a video file or a folder of images.

    facecore-realtime --model_name NAME                  # webcam 0, window if there is a screen
    facecore-realtime --source clip.mp4 -o gifs/out.gif --no-display

(``python realtime.py`` in the checkout is the same command.) Faces are matched against the gallery
in ``--people_faces`` (one folder or one photo per person; see people_faces/README.md). Each face
gets a box, the best-matching name and its cosine similarity, or ``Unknown`` below ``--threshold``
(default: the checkpoint's threshold at false-positive rate ``--fpr``, 0.01). The pipeline
(facecore.recognition.recognize.Recognizer) detects on a reduced frame every few frames (every frame while
nobody is tracked), follows faces with optical flow in between, and re-embeds each track every few
frames (with its mirror image); the latest embedding names it. A progress bar with the frame rate
runs on the console. Bad input (camera, video, an output that cannot be written, model name,
threshold, nothing to show or write), a source that gives no frame, or an output that cannot be
finished (disk full) exits with code 2 and one line on stderr; files already at the output paths
are then left as they were. Ctrl-C, SIGTERM or q end the run cleanly: the frames processed so far
are written to the output and the report (exit 0). The model and threshold come from
``facecore.recognition.recognizer`` (``Recognizer.from_name``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from ..core.files import atomic_write_text
from ..core.paths import PROJECT_ROOT, cache_root, in_checkout
from ..core.runtime import set_threads
from . import video
from .realtime_loop import LoopOptions, process, signals_deferred, stop_on_signals
from .recognize import Recognizer, RecognizerConfig
from .recognizer import (REALTIME_FPR, ModelChoiceError, check_threshold, cli_message, input_path,
                         load_model as load, resolve_checkpoint as resolve)
from .video import SourceError, open_camera, open_source, screen_available
from .video_out import OutputError


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def default_paths() -> dict[str, Path]:
    """Defaults of the path flags, in one place: people_faces/ of the checkout (of the current folder when
    installed) and the gallery cache under ``facecore.core.paths.cache_root()``."""
    people = PROJECT_ROOT / "people_faces" if in_checkout() else Path("people_faces")
    return {"people_faces": people, "cache_dir": cache_root() / "gallery"}


def build_parser() -> argparse.ArgumentParser:
    d, paths = RecognizerConfig(), default_paths()  # the pipeline's defaults, stated once in facecore
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name", help="a shipped model (facecore.core.zoo; default: the default model)")
    p.add_argument("--checkpoint", help="a facecore checkpoint file instead of a shipped model")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cam", type=int, help="camera index (default 0 when no --source is given)")
    src.add_argument("--source", help="a video file or a folder of images")
    p.add_argument("--people_faces", default=str(paths["people_faces"]), help="gallery folder (default people_faces/)")
    p.add_argument("-o", "--output_path", help="write the annotated video as .gif or .mp4")
    p.add_argument("--output_width", type=int, help="output width in px (default: 320 for .gif, frame width for .mp4)")
    p.add_argument("--output_fps", type=float, help="output frame rate (default: 10 for .gif, the source's for .mp4)")
    p.add_argument("--landmarks", action=argparse.BooleanOptionalAction, default=True, help="draw the 5 landmarks")
    p.add_argument("--burn_fps", action="store_true", help="draw the fps counter into the output file too "
                   "(default: on the console and in the window only)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar with the frame rate (frame/s) on stderr (default: when stderr is a terminal)")
    p.add_argument("--threshold", type=float,
                   help="cosine similarity below which a face is Unknown (default: the checkpoint's threshold "
                        "calibrated at --fpr; without one 0.4, with a warning)")
    p.add_argument("--fpr", type=float, default=REALTIME_FPR,
                   help=f"the false-positive rate whose calibrated threshold is used (default {REALTIME_FPR}; "
                        "stored for 0.001, 0.003, 0.01, 0.03, 0.05, 0.1, on the sets the run prints)")
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
    p.add_argument("--detect_every", type=int, default=d.detect_every,
                   help=f"frames between detections while a face is tracked (default {d.detect_every})")
    p.add_argument("--embed_every", type=int, default=d.embed_every,
                   help=f"frames between re-embeddings of a face (default {d.embed_every})")
    p.add_argument("--detect_side", type=int, default=d.detect_side_px,
                   help=f"longer side (px) of the frame the detector sees (default {d.detect_side_px}: "
                        "a 640x360 clip at full size)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=d.flip,
                   help="embed each face with its mirror image too, as the calibrated thresholds were "
                        "(default on; --no-flip halves the embedding work)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=d.bf16,
                   help="embed faces in bfloat16 on the CPU (default: where the CPU has it natively, "
                        "AVX512-BF16 or AMX; elsewhere it is emulated and slower)")
    p.add_argument("--min_score", type=float, default=d.min_score,
                   help=f"drop detections scored below this (default {d.min_score}: MTCNN's 0.7 boxes hair, "
                        "hands and dark background in video; 0: keep all)")
    p.add_argument("--min_rel_side", type=float, default=d.min_rel_side,
                   help=f"drop boxes smaller than this share of the frame's largest face (default {d.min_rel_side}; 0: keep all)")
    p.add_argument("--cache_dir", default=str(paths["cache_dir"]), help="gallery embedding cache")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def flag_message(message: str, flags: set[str] | None = None) -> str:
    """A library error as the command line says it: a leading parameter name (``output_path ...``,
    ``people_faces: ...``) that is also a flag becomes the flag (``--output_path ...``)."""
    flags = flags if flags is not None else _flags()
    message = cli_message(message)
    head = message.split(" ", 1)[0].split(":", 1)[0]
    return f"--{message}" if head in flags else message


def _flags() -> set[str]:
    return {a.dest for a in build_parser()._actions if any(o.startswith("--") for o in a.option_strings)}


def resolve_checkpoint(args: argparse.Namespace) -> Path:
    """The checkpoint to load (``facecore.recognition.recognizer.resolve_checkpoint``), UsageError if none."""
    try:
        return resolve(args.model_name, args.checkpoint)
    except ModelChoiceError as e:
        raise UsageError(flag_message(str(e))) from None


def load_model(args: argparse.Namespace):
    """(embedder, threshold, where the threshold comes from): ``facecore.recognition.recognizer.load_model``."""
    set_threads(max(1, args.threads))
    try:
        return load(args.model_name, args.checkpoint, args.fpr, args.threshold, args.device, args.head)
    except ModelChoiceError as e:
        raise UsageError(flag_message(str(e))) from None


def check_args(args: argparse.Namespace) -> Path | None:
    """UsageError for a number out of range, a threshold that is no cosine, an output that cannot be
    written, or a run that would neither show nor write anything; returns the checked output path."""
    for name, low in (("threads", 1), ("detect_every", 1), ("embed_every", 1), ("detect_side", 48),
                      ("output_width", 2), ("max_frames", 1)):
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
            video.check_writable(args.report_json, "report_json")
        if args.report_json and out is not None and Path(args.report_json).resolve() == out.resolve():
            raise ValueError(f"report_json {args.report_json}: is also --output_path; give two file names")
        if args.cache_dir:
            cache = Path(args.cache_dir)
            if cache.exists() and not cache.is_dir():
                raise ValueError(f"cache_dir {cache}: is a file; give a folder")
            video.check_writable(_existing(cache) / "x", "cache_dir")
    except ValueError as e:
        raise UsageError(flag_message(str(e))) from None
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


def want_display(args: argparse.Namespace) -> bool:
    """--display as asked, or whether there is a screen; asked for without one: a warning (once)."""
    if args.display and not screen_available():
        warnings.warn("--display: no screen found (DISPLAY is unset); running without a window", UserWarning)
        args.display = False
    return screen_available() if args.display is None else args.display


def open_input(args: argparse.Namespace):
    if args.source is not None:
        return open_source(input_path(args.source))
    return open_camera(args.cam if args.cam is not None else 0)


def run(args: argparse.Namespace) -> dict:
    """Check the input, process the source, and return the report (written by ``main``)."""
    out_path = check_args(args)  # no torch: bad input is reported before the slow imports
    people = input_path(args.people_faces)
    if not people.is_dir():
        raise UsageError(f"--people_faces {people}: no such folder (one sub-folder or photo per person)")
    resolve_checkpoint(args)  # a bad model name fails before the camera or video is opened
    source = open_input(args)
    try:
        set_threads(max(1, args.threads))
        cfg = RecognizerConfig(detect_side_px=args.detect_side, detect_every=args.detect_every,
                               embed_every=args.embed_every, flip=args.flip, min_score=args.min_score,
                               min_rel_side=args.min_rel_side, bf16=args.bf16)
        try:
            rec = Recognizer.from_name(model_name=args.model_name, people_faces=people, fpr=args.fpr, threshold=args.threshold,
                                       checkpoint=args.checkpoint, device=args.device, config=cfg,
                                       cache_dir=args.cache_dir, head=args.head)
        except ModelChoiceError as e:
            raise UsageError(flag_message(str(e))) from None
        gallery, threshold = rec.gallery, rec.threshold
        print(f"source: {source.description}; gallery: {len(gallery)} people ({', '.join(gallery.names) or 'none'}); "
              f"threshold {threshold:.3f} ({rec.threshold_origin})", flush=True)
        report = {"source": source.description, "people": gallery.names, "threshold": threshold,
                  "threshold_origin": rec.threshold_origin}
        opts = LoopOptions(out_path, args.output_width, args.output_fps, args.landmarks, args.burn_fps,
                           want_display(args), args.progress, args.max_frames, bool(args.report_json))
        report.update(process(source, rec, opts))
    finally:
        source.close()
    if report["frames_processed"] == 0 and not report["stopped_by"]:
        outputs = [p for p in (args.output_path, args.report_json) if p]
        raise UsageError(f"{source.description}: no frame could be read; nothing written to "
                         f"{', '.join(outputs)}{left_as_they_were(outputs)}")
    return report


def left_as_they_were(paths: list[str]) -> str:
    """'' or '; a.gif: a file from an earlier run, left as it was' for the output paths that exist."""
    old = [str(p) for p in paths if p and Path(p).exists()]
    return f"; {', '.join(old)}: {'a file' if len(old) == 1 else 'files'} from an earlier run, left as it was" if old else ""


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The command line (``facecore-realtime``, ``python realtime.py``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    with stop_on_signals():
        return _main(args, parser.prog)


def _main(args: argparse.Namespace, prog: str) -> int:
    try:
        report = run(args)
    except (UsageError, ModelChoiceError, SourceError) as e:
        print(f"{prog}: error: {flag_message(str(e))}", file=sys.stderr)
        return 2
    except OutputError as e:
        also = f"; --report_json {args.report_json} not written either" if args.report_json else ""
        print(f"{prog}: error: {e}{also}{left_as_they_were([args.output_path, args.report_json])}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"{prog}: stopped ({e or 'SIGINT'}) before the first frame; nothing written", file=sys.stderr)
        return 130
    if report["frames_processed"] == 0:
        print(f"{prog}: stopped ({report['stopped_by']}) before the first frame; nothing written", file=sys.stderr)
        return 130
    if report.get("stopped_by"):
        print(f"stopped by {report['stopped_by']}; writing what was processed", flush=True)
    if args.report_json:
        try:
            with signals_deferred():
                atomic_write_text(args.report_json, json.dumps(report, indent=1))
        except OSError as e:
            done = f"; {report['output']['path']} was written" if "output" in report else ""
            print(f"{prog}: error: --report_json {args.report_json}: writing it failed ({e.strerror}; disk full "
                  f"or a file size limit?); nothing written there{done}{left_as_they_were([args.report_json])}",
                  file=sys.stderr)
            return 2
    counts = ", ".join(f"{k}: {v}" for k, v in report["face_frames"].items()) or "no faces"
    print(f"{report['frames_processed']} frames in {report['seconds']:.1f} s ({report['fps']} fps end to end); "
          f"labelled face-frames: {counts}")
    if "output" in report:
        out = report["output"]
        print(f"wrote {out['path']} ({out['frames']} frames at {out['fps']:g} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
