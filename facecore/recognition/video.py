"""Frames in (camera, video file, folder of images) and the output's checks and frame size.

Frames are HxWx3 uint8 RGB arrays. Annotated frames go out through ``facecore.recognition.video_out`` (GIF,
MP4) and ``facecore.recognition.drawing``.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..core.files import list_images, load_rgb, output_target, unwritable_reason
FOLDER_FPS = 10.0  # nominal frame rate of a folder of images
OUTPUT_EXTENSIONS = (".gif", ".mp4")


class SourceError(Exception):
    """A camera, video or folder that cannot be read; the message says which and what to do."""


def _quiet_cv2():
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own log lines too (AV_LOG_QUIET)

    # OpenCV's own warnings would add lines to our one-line errors
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


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
            raise SourceError(f"source={root}: folder has no images (.jpg, .png, ...)")
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
        raise SourceError(f"cam={index}: camera {index} could not be opened or gave no frame "
                          f"(no such device, or in use); try another cam=INDEX or source=PATH")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    return CaptureSource(cap, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"camera {index}", fps, live=True)


def open_source(path: str | os.PathLike) -> FrameSource:
    """A video file or a folder of images; SourceError when missing or unreadable."""
    p = Path(path)
    if p.is_dir():
        return FolderSource(p)
    if not p.exists():
        raise SourceError(f"source={p}: no such video file or folder")
    cv2 = _quiet_cv2()
    cap = cv2.VideoCapture(str(p))
    ok, bgr = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise SourceError(f"source={p}: not a video OpenCV can read (unknown format or damaged file)")
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
        raise ValueError(f"output_path={p}: use a .gif or .mp4 file name")
    return check_writable(p, "output_path")


def check_writable(path: str | os.PathLike, flag: str) -> Path:
    """``path`` when a file can be created there by ``facecore.core.files.output_target``'s rule (a symlink is
    written through; a folder, device node, FIFO or socket is refused) and its folder takes a probe file
    (removed at once), else ValueError naming ``flag`` (a parameter name, shown as ``flag=path``, or a
    ``--flag``): also for a missing or read-only folder."""
    p = Path(path)
    what = f"{flag} {p}" if flag.startswith("-") else f"{flag}={p}"
    target = output_target(p, flag)
    if not target.parent.resolve().is_dir():
        raise ValueError(f"{what}: folder {target.parent} does not exist; create it or choose another path")
    if why := unwritable_reason(target.parent):
        raise ValueError(f"{what}: cannot write in {target.parent} ({why}); choose another folder")
    return p


def output_size(frame_hw: tuple[int, int], width: int | None) -> tuple[int, int]:
    """(width, height) of output frames: ``width`` wide (never enlarged), aspect kept, both even."""
    h, w = frame_hw
    ow = min(w, width) if width else w
    oh = round(h * ow / w)
    return max(2, ow - ow % 2), max(2, oh - oh % 2)


def screen_available() -> bool:
    """Whether a window can be opened (an X11/Wayland display on Linux; assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def resize_frame(frame: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """The frame at (width, height) with area resampling (unchanged when already that size)."""
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
