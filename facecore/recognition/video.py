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
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np
from PIL import Image

from ..core.files import list_images, load_rgb
from .tracking import UNKNOWN

if TYPE_CHECKING:  # recognize imports torch; opening sources and drawing do not need it
    from .recognize import FaceResult

FOLDER_FPS = 10.0  # nominal frame rate of a folder of images
GIF_BITS = 6  # 2**6 colours per GIF frame: smaller files than 256, hardly visible at 320 px
OUTPUT_EXTENSIONS = (".gif", ".mp4")


class SourceError(Exception):
    """A camera, video or folder that cannot be read; the message says which and what to do."""


def _quiet_cv2():
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own log lines too (AV_LOG_QUIET)

    # OpenCV's own warnings would add lines to our one-line errors
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


class FrameSource:
    """Iterates over RGB frames; ``fps`` is the source rate, ``live`` is True for a camera."""

    def __init__(self, description: str, fps: float, live: bool = False):
        self.description, self.fps, self.live = description, fps, live

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CaptureSource(FrameSource):
    """A camera index or video file read through OpenCV."""

    def __init__(self, capture, first: np.ndarray, description: str, fps: float, live: bool):
        super().__init__(description, fps, live)
        self.capture, self._first = capture, first

    def __iter__(self) -> Iterator[np.ndarray]:
        cv2 = _quiet_cv2()
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                return
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

    def __iter__(self) -> Iterator[np.ndarray]:
        for p in self.paths:
            im = load_rgb(self.root / p, max_side=None)
            if im.rgb is None:
                print(f"warning: {self.root / p}: {im.message}, skipped", file=sys.stderr)
                continue
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
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    desc = f"video {p} ({bgr.shape[1]}x{bgr.shape[0]}, {fps:.2f} fps, {n} frames)"
    return CaptureSource(cap, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), desc, fps, live=False)


def check_output_path(path: str | os.PathLike) -> Path:
    """The output path, or ValueError when its type is unsupported or it cannot be written."""
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise ValueError(f"--output_path {p}: use a .gif or .mp4 file name")
    return check_writable(p, "--output_path")


def check_writable(path: str | os.PathLike, flag: str) -> Path:
    """``path`` when a file can be created there (tried: a probe file in its folder, removed at once),
    else ValueError naming ``flag``: a folder given as the file, a missing or read-only folder."""
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
    together on ``close``; MP4 frames stream to imageio-ffmpeg (H.264).
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path, self.fps = Path(path), float(fps)
        self.gif = self.path.suffix.lower() == ".gif"
        self.frames_written, self._last_slot, self._frames = 0, -1, []
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        if not self.gif:
            import imageio.v2 as iio2  # deferred: only writing a GIF needs it

            self._mp4 = iio2.get_writer(self._tmp, format="FFMPEG", fps=self.fps, codec="libx264", quality=7,
                                        macro_block_size=2, ffmpeg_log_level="error")

    def wants(self, t_seconds: float) -> bool:
        """Whether the frame at this time starts a new output slot (call once per frame)."""
        slot = math.floor(t_seconds * self.fps + 1e-6)
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True

    def write(self, frame: np.ndarray) -> None:
        if self.gif:
            self._frames.append(Image.fromarray(frame).quantize(2**GIF_BITS, method=Image.Quantize.FASTOCTREE))
        else:
            self._mp4.append_data(frame)
        self.frames_written += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and move it into place (``keep=False`` discards it)."""
        if self.gif and keep and self._frames:
            self._frames[0].save(self._tmp, format="GIF", save_all=True, append_images=self._frames[1:],
                                 duration=round(1000 / self.fps), loop=0)
        elif not self.gif:
            self._mp4.close()
        if keep and self.frames_written:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary file only
            os.replace(self._tmp, self.path)
        elif self._tmp.exists():
            self._tmp.unlink()


def screen_available() -> bool:
    """Whether a window can be opened (an X11/Wayland display on Linux; assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def draw_faces(image: np.ndarray, faces: list["FaceResult"], scale: float = 1.0, landmarks: bool = True,
               fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with boxes, names, similarities, landmarks and an FPS counter drawn.

    ``scale`` maps frame pixels to ``image`` pixels (e.g. 0.5 for a half-size output frame).
    """
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    font, fs = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, w / 900)
    thick = max(1, round(w / 480))
    for f in faces:
        known = f.name != UNKNOWN
        colour = (40, 200, 60) if known else (230, 50, 50)
        x1, y1, x2, y2 = (np.asarray(f.box) * scale).round().astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        text = f"{f.name} {f.similarity:.2f}" if np.isfinite(f.similarity) else f.name
        (tw, th), base = cv2.getTextSize(text, font, fs, 1)
        x1 = int(np.clip(x1, 0, max(0, w - tw - 2)))  # keep the label inside the image
        ty = y1 - 3 if y1 - th - base - 3 >= 0 else y2 + th + 3
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 1), colour, -1)
        cv2.putText(out, text, (x1 + 1, ty - 1), font, fs, (255, 255, 255), 1, cv2.LINE_AA)
        if landmarks:
            for x, y in np.asarray(f.landmarks) * scale:
                cv2.circle(out, (int(round(x)), int(round(y))), max(1, thick), (255, 220, 0), -1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:5.1f} fps", (4, 4 + round(22 * fs)), font, fs, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, f"{fps:5.1f} fps", (4, 4 + round(22 * fs)), font, fs, (255, 255, 0), 1, cv2.LINE_AA)
    return out


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
