"""The realtime command's frame loop: recognise, draw, write, show, with a progress bar and clean stops.

``process`` runs ``Recognizer.process`` on every frame of a source, draws the faces on the frames
that go to the output (``facecore.recognition.drawing``), shows them in a window and reports per-frame faces.
The frames-per-second counter goes to the console (the progress bar's rate, frame/s), and into saved
files only with ``burn_fps``. SIGINT or SIGTERM end the loop (``Stop``); outputs are finished with
signals deferred, so a second signal cannot leave a temporary file.
"""
from __future__ import annotations

import math
import signal
import sys
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .drawing import draw_faces
from .video import FpsMeter, FrameSource, output_size, resize_frame
from .video_out import OutputWriter

GIF_WIDTH_PX, GIF_FPS = 320, 10.0  # GIF defaults: small files that still show who is who


@dataclass
class LoopOptions:
    """What the loop does besides recognising: outputs, window, console."""

    output_path: Path | None = None
    output_width: int | None = None  # None: GIF_WIDTH_PX for a GIF, the frame's width for an MP4
    output_fps: float | None = None  # None: GIF_FPS for a GIF, the source's rate for an MP4
    landmarks: bool = True
    burn_fps: bool = False  # draw the fps counter into the output file's frames too
    display: bool = False
    progress: bool | None = None  # a progress bar on stderr (None: when stderr is a terminal)
    max_frames: int | None = None
    per_frame: bool = False  # keep every frame's faces for the report


class Stop(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM: the loop ends and what was processed is written."""


_STOPPING: list[int] = []


def _stop(signum, frame) -> None:
    """The first signal stops the run; later ones are ignored (outputs are being finished)."""
    if not _STOPPING:
        _STOPPING.append(signum)
        raise Stop(signal.Signals(signum).name)


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise ``Stop`` once; SIGXFSZ is ignored, so a file size limit (ulimit -f)
    is an OSError on the write that crosses it rather than the end of the process."""
    _STOPPING.clear()
    sigs = [signal.SIGINT, signal.SIGTERM]
    old = {s: signal.signal(s, _stop) for s in sigs}
    if hasattr(signal, "SIGXFSZ"):
        old[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            # after a stop, the signals that follow are ignored up to the process's exit (Python's
            # shutdown would otherwise restore the default action, which kills with -SIGINT/-SIGTERM)
            signal.signal(s, signal.SIG_IGN if _STOPPING and s in sigs else h)


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


def face_record(f) -> dict:
    """One face of the report: track id, name, similarity (None if not embedded yet), box."""
    sim = round(float(f.similarity), 4) if math.isfinite(f.similarity) else None
    return {"track": f.track_id, "name": f.name, "similarity": sim, "box": [round(float(v), 1) for v in f.box]}


def show(frame_rgb) -> bool:
    """Show a frame; False when the user pressed q or Esc."""
    import cv2

    cv2.imshow("facecore realtime (q quits)", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)


def _progress_bar(source: FrameSource, opts: LoopOptions):
    """A tqdm bar on stderr: frames of a file out of its total (when known), or a running count."""
    from tqdm.auto import tqdm

    total = source.frames_total
    if opts.max_frames is not None:
        total = opts.max_frames if total is None else min(total, opts.max_frames)
    return tqdm(total=None if source.live else total, unit="frame", desc="frames", file=sys.stderr,
                disable=not (sys.stderr.isatty() if opts.progress is None else opts.progress),
                mininterval=0.5, dynamic_ncols=True)


def process(source: FrameSource, rec, opts: LoopOptions) -> dict:
    """The frame loop: recognise, draw, write, show; Ctrl-C, SIGTERM (or q in the window) end it
    cleanly. Returns the run's report; raises ``OutputError`` when the output cannot be written."""
    gif = opts.output_path is not None and opts.output_path.suffix.lower() == ".gif"
    writer = None
    if opts.output_path is not None:
        writer = OutputWriter(opts.output_path, opts.output_fps or (GIF_FPS if gif else source.fps))
    out_w, size = opts.output_width or (GIF_WIDTH_PX if gif else None), None
    counts, per_frame, meter, n, ok, stopped_by = Counter(), [], FpsMeter(), 0, False, None
    exhausted = False  # the source ran out (not max_frames, q or a signal)
    bar = _progress_bar(source, opts)
    t_start = time.perf_counter()
    try:
        for i, frame in enumerate(source):
            if opts.max_frames is not None and i >= opts.max_frames:
                break
            faces = rec.process(frame)
            fps = meter.tick()
            fps = fps if math.isfinite(fps) else None
            n += 1
            counts.update(f.name for f in faces)
            if opts.per_frame:
                per_frame.append({"index": i, "faces": [face_record(f) for f in faces]})
            t = time.perf_counter() - t_start if source.live else i / source.fps
            if writer is not None and writer.wants(t):
                size = size or output_size(frame.shape[:2], out_w)  # the first frame's, for all
                small = resize_frame(frame, size)
                writer.write(draw_faces(small, faces, size[0] / frame.shape[1], opts.landmarks,
                                        fps if opts.burn_fps else None))
            if opts.display and not show(draw_faces(frame, faces, 1.0, opts.landmarks, fps)):
                break
            bar.update()  # its rate (frame/s) is the console's fps counter
        else:
            exhausted = True
        ok = True
    except KeyboardInterrupt as e:
        ok, stopped_by = True, str(e) or "SIGINT"
    finally:
        bar.close()
        with signals_deferred():  # a second Ctrl-C or SIGTERM must not leave a half-written temporary file
            if writer is not None:
                writer.close(keep=ok and n > 0)
    elapsed = time.perf_counter() - t_start
    out = {"frames_processed": n, "seconds": round(elapsed, 3), "fps": round(n / elapsed, 2) if elapsed > 0 else None,
           "pipeline": dict(rec.counts), "face_frames": dict(counts.most_common()), "stopped_by": stopped_by}
    if writer is not None and writer.frames_written:
        out["output"] = {"path": str(opts.output_path), "frames": writer.frames_written, "fps": writer.fps}
    shortfall = source.shortfall() if exhausted else None
    if shortfall:
        warnings.warn(shortfall, UserWarning)
        out["source_warning"] = shortfall
    if opts.per_frame:
        out["frames"] = per_frame
    return out
