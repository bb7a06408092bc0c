"""Frames in (camera, video file, folder of images), annotated frames out (window, GIF, MP4).

Frames are HxWx3 uint8 RGB arrays. Output files are written to a temporary file beside the target
and renamed when complete, so an interrupted run never leaves a half-written GIF or MP4.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .files import list_images, load_rgb
FOLDER_FPS = 10.0  # nominal frame rate of a folder of images
GIF_BITS = 6  # 2**6 colours per GIF frame: smaller files than 256, hardly visible at 320 px
OUTPUT_EXTENSIONS = (".gif", ".mp4")


class SourceError(Exception):
    """A camera, video or folder that cannot be read; the message says which and what to do."""


def _quiet_cv2():
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own log lines too (AV_LOG_QUIET)
    import cv2

    # OpenCV's own warnings would add lines to our one-line errors
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


class OutputError(Exception):
    """An output file that could not be written (disk full, file size limit, ...); nothing is left
    behind for it, and the message names the file."""


class FrameSource:
    """Iterates over RGB frames; ``fps`` is the source rate, ``live`` is True for a camera,
    ``frames_expected`` the frame count a file promises (None: unknown or live), ``frames_read``
    how many frames were decoded so far."""

    def __init__(self, description: str, fps: float, live: bool = False, frames_expected: int | None = None,
                 name: str | None = None):
        self.description, self.fps, self.live, self.name = description, fps, live, name or description
        self.frames_expected, self.frames_read = frames_expected, 0
        self.frames_total = frames_expected  # for a progress bar: None when unknown

    def shortfall(self) -> str | None:
        """After the last frame: a warning when fewer frames were read than the file promised (a file
        damaged or cut mid-stream), else None."""
        n = self.frames_expected
        if n is None or self.frames_read >= n - 1:  # one frame of slack: some containers round the count
            return None
        return (f"{self.name}: read {self.frames_read} of the {n} frames its header promises "
                f"(damaged or truncated file); the rest is missing from the outputs")

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CaptureSource(FrameSource):
    """A camera index or video file read through OpenCV."""

    def __init__(self, capture, first: np.ndarray, description: str, fps: float, live: bool,
                 frames_expected: int | None = None, name: str | None = None):
        super().__init__(description, fps, live, frames_expected, name)
        self.capture, self._first = capture, first

    def __iter__(self) -> Iterator[np.ndarray]:
        cv2 = _quiet_cv2()
        if self._first is not None:
            first, self._first = self._first, None
            self.frames_read += 1
            yield first
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                return
            self.frames_read += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.capture.release()


class FolderSource(FrameSource):
    """The images of a folder (sorted by path) as frames at ``FOLDER_FPS``; unreadable ones are skipped."""

    def __init__(self, root: Path):
        self.root, self.paths = root, list_images(root)
        if not self.paths:
            raise SourceError(f"--source {root}: folder has no images (.jpg, .png, ...)")
        super().__init__(f"folder {root} ({len(self.paths)} images)", FOLDER_FPS)
        self.frames_total = len(self.paths)  # for a progress bar (unreadable images are warned about)

    def __iter__(self) -> Iterator[np.ndarray]:
        for p in self.paths:
            im = load_rgb(self.root / p, max_side=None)
            if im.rgb is None:
                print(f"warning: {self.root / p}: {im.message}, skipped", file=sys.stderr)
                continue
            self.frames_read += 1
            yield im.rgb


def open_camera(index: int) -> CaptureSource:
    """Camera ``index``; SourceError when it does not open or gives no frame."""
    cv2 = _quiet_cv2()
    cap = cv2.VideoCapture(index)
    ok, bgr = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise SourceError(f"--cam {index}: camera {index} could not be opened or gave no frame "
                          f"(no such device, or in use); try another --cam or --source PATH")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    return CaptureSource(cap, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"camera {index}", fps, live=True)


def open_source(path: str | os.PathLike) -> FrameSource:
    """A video file or a folder of images; SourceError when missing or unreadable."""
    p = Path(path)
    if p.is_dir():
        return FolderSource(p)
    if not p.exists():
        raise SourceError(f"--source {p}: no such video file or folder")
    cv2 = _quiet_cv2()
    cap = cv2.VideoCapture(str(p))
    ok, bgr = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise SourceError(f"--source {p}: not a video OpenCV can read (unknown format or damaged file)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and math.isfinite(fps) and fps > 0 else 30.0
    n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    n = int(n) if n and math.isfinite(n) and n > 0 else None
    desc = f"video {p} ({bgr.shape[1]}x{bgr.shape[0]}, {fps:.2f} fps, {n or 'unknown number of'} frames)"
    return CaptureSource(cap, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), desc, fps, live=False, frames_expected=n,
                         name=f"video {p}")


def check_output_path(path: str | os.PathLike) -> Path:
    """The output path, or ValueError when its type is unsupported or it cannot be written."""
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise ValueError(f"output_path {p}: use a .gif or .mp4 file name")
    return check_writable(p, "output_path")


def check_writable(path: str | os.PathLike, flag: str) -> Path:
    """``path`` when a file can be created there (tried: a probe file in its folder, removed at once),
    else ValueError naming ``flag`` (the parameter): a folder given as the file, a missing or read-only folder."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p}: is a folder; give a file name inside it")
    if not p.parent.resolve().is_dir():
        raise ValueError(f"{flag} {p}: folder {p.parent} does not exist; create it or choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.probe.", dir=p.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{flag} {p}: cannot write in {p.parent} ({e.strerror}); choose another folder") from None
    return p


def output_size(frame_hw: tuple[int, int], width: int | None) -> tuple[int, int]:
    """(width, height) of output frames: ``width`` wide (never enlarged), aspect kept, both even."""
    h, w = frame_hw
    ow = min(w, width) if width else w
    oh = round(h * ow / w)
    return max(2, ow - ow % 2), max(2, oh - oh % 2)


class OutputWriter:
    """Writes frames at ``fps`` (the first frame of each 1/fps slot) to a .gif or .mp4 file.

    GIF frames are quantised as they come with Pillow's fast octree (64 colours: 1-2 ms a frame at
    320 px, where the median cut imageio's Pillow plugin applies takes 5-10x longer) and saved
    together on ``close``; MP4 frames stream to ffmpeg (H.264, ``Mp4Encoder``). A write that fails (disk
    full, file size limit) raises ``OutputError`` naming the file, after the temporary file is removed.
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path, self.fps = Path(path), float(fps)
        self.gif = self.path.suffix.lower() == ".gif"
        self.frames_written, self._last_slot, self._frames, self._mp4 = 0, -1, [], None
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)

    def wants(self, t_seconds: float) -> bool:
        """Whether the frame at this time starts a new output slot (call once per frame)."""
        slot = math.floor(t_seconds * self.fps + 1e-6)
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True

    def write(self, frame: np.ndarray) -> None:
        if self.gif:
            from PIL import Image

            self._frames.append(Image.fromarray(frame).quantize(2**GIF_BITS, method=Image.Quantize.FASTOCTREE))
        else:
            with self._failing("writing"):
                if self._mp4 is None:  # started with the first frame: an empty run starts no encoder
                    self._mp4 = Mp4Encoder(self._tmp, self.fps, (frame.shape[1], frame.shape[0]))
                self._mp4.write(frame)
        self.frames_written += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and move it into place (``keep=False``, or no frame written: removed)."""
        keep = keep and self.frames_written > 0
        with self._failing("finishing"):
            if self.gif and keep:
                self._frames[0].save(self._tmp, format="GIF", save_all=True, append_images=self._frames[1:],
                                     duration=round(1000 / self.fps), loop=0)
            elif self._mp4 is not None:
                mp4, self._mp4 = self._mp4, None
                mp4.close()
            if keep:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary file only
                os.replace(self._tmp, self.path)
        if self._tmp.exists():
            self._tmp.unlink()

    @contextmanager
    def _failing(self, doing: str):
        """OSError (or the encoder's error) -> OutputError naming the file, temporary file removed."""
        try:
            yield
        except (OSError, RuntimeError, ValueError) as e:
            self._frames, mp4, self._mp4 = [], self._mp4, None
            if mp4 is not None:
                e = mp4.kill() or e  # the encoder's own reason, when it has one, says more than a broken pipe
            self._tmp.unlink(missing_ok=True)
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0][:120]
            hint = "" if "limit" in reason else "; disk full or a file size limit?"
            raise OutputError(f"{self.path}: {doing} failed ({reason}{hint}); nothing written there") from None


class Mp4Encoder:
    """H.264 frames through an ffmpeg process (imageio-ffmpeg's binary) whose exit status is checked,
    so a file that ffmpeg could not finish (disk full, file size limit) is an error, not a short video."""

    CRF = 15  # constant rate factor: what imageio's quality 7 gives; visually lossless at these sizes

    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int]):
        import subprocess
        from fractions import Fraction

        from imageio_ffmpeg import get_ffmpeg_exe

        self._log = tempfile.TemporaryFile()  # ffmpeg's error lines, for the message
        cmd = [get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size_wh[0]}x{size_wh[1]}",
               "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an",
               "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.CRF), "-v", "error", str(path)]
        # its own session: a Ctrl-C meant for us must not stop ffmpeg before the frames so far are written
        self._p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                   start_new_session=True)

    def write(self, frame: np.ndarray) -> None:
        self._p.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())

    def close(self) -> None:
        """Wait for ffmpeg to finish the file; OSError with its reason when it failed."""
        try:
            self._p.stdin.close()
        finally:
            rc = self._p.wait()
        if rc != 0:
            raise self._failure(rc)

    def kill(self) -> OSError | None:
        """Stop ffmpeg after a failed write; its reason for failing, if it had one."""
        try:
            self._p.stdin.close()
        except OSError:
            pass
        try:
            rc = self._p.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a hung encoder is killed; its file is removed anyway
            self._p.kill()
            rc = self._p.wait()
        return self._failure(rc) if rc else None

    def _failure(self, rc: int) -> OSError:
        import signal

        if rc < 0:
            sig = signal.Signals(-rc).name
            what = "file size limit reached" if sig == "SIGXFSZ" else "killed"
            return OSError(f"ffmpeg stopped by {sig}: {what}")
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return OSError(f"ffmpeg exit {rc}: {lines[-1][:100] if lines else 'no message'}")


def screen_available() -> bool:
    """Whether a window can be opened (an X11/Wayland display on Linux; assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def resize_frame(frame: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """The frame at (width, height) with area resampling (unchanged when already that size)."""
    import cv2

    if (frame.shape[1], frame.shape[0]) == tuple(size_wh):
        return frame
    return cv2.resize(frame, size_wh, interpolation=cv2.INTER_AREA)


class FpsMeter:
    """Frames per second over a sliding window of recent frames."""

    def __init__(self, window: int = 30):
        self.window, self.times = window, []

    def tick(self) -> float:
        self.times = (self.times + [time.perf_counter()])[-self.window - 1:]
        if len(self.times) < 2:
            return float("nan")
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)
