"""Annotated frames out: GIF and MP4 files that appear whole or not at all.

Output files are written to a temporary file beside the target and renamed when complete, so an
interrupted run never leaves a half-written GIF or MP4; a write that fails (disk full, a file size
limit) removes the temporary file and raises ``OutputError`` naming the file.
"""
from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..core.files import commit_output, output_target

GIF_BITS = 6  # 2**6 colours per GIF frame: smaller files than 256, hardly visible at 320 px


class OutputError(Exception):
    """An output file that could not be written (disk full, file size limit, ...); nothing is left
    behind for it, and the message names the file."""


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
        target = output_target(self.path, "output_path")  # a symlink is written through (facecore.core.files)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=self.path.suffix, dir=target.parent)
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
                commit_output(self._tmp, self.path, "output_path")  # mode as open() gives it, not mkstemp's 0600
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
