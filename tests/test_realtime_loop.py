"""The realtime frame loop on synthetic frames: what goes into the output, empty and short sources."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from facecore.recognition import realtime_loop
from facecore.recognition.drawing import draw_faces
from facecore.recognition.realtime_loop import LoopOptions, process
from facecore.recognition.recognize import FaceResult
from facecore.recognition.video import FrameSource, resize_frame
from facecore.recognition.video_out import OutputWriter


class Frames(FrameSource):
    """``n`` synthetic 360x640 frames; the header (``expected``) may promise more."""

    def __init__(self, n: int, expected: int | None = None):
        super().__init__("test frames", fps=10.0, frames_expected=expected, name="clip.mp4")
        self.n = n

    def __iter__(self):
        rng = np.random.default_rng(0)
        for _ in range(self.n):
            self.frames_read += 1
            yield rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)


class OneFace:
    """A recognizer stand-in: the same known face in every frame."""

    counts = Counter()

    def process(self, frame):
        return [FaceResult(np.array([200.0, 100, 300, 220]), np.full((5, 2), 250.0), "Zoë_Ñ", 0.71)]


@pytest.fixture
def written(monkeypatch) -> list[np.ndarray]:
    """The frames handed to the output writer."""
    frames = []

    class Recording(OutputWriter):
        def write(self, frame):
            frames.append(frame)
            super().write(frame)

    monkeypatch.setattr(realtime_loop, "OutputWriter", Recording)
    return frames


@pytest.mark.parametrize("burn_fps", [False, True])
def test_output_frames_are_the_drawn_frames_fps_only_when_asked(tmp_path, written, burn_fps):
    src, out = Frames(12), tmp_path / "o.gif"
    report = process(src, OneFace(), LoopOptions(out, progress=False, burn_fps=burn_fps))
    assert report["frames_processed"] == 12 and report["output"]["frames"] == len(written) == 12 and out.is_file()
    same = []
    for got, frame in zip(written, Frames(12)):
        plain = draw_faces(resize_frame(frame, (320, 180)), OneFace().process(frame), 0.5, True, None)
        assert got.shape == plain.shape == (180, 320, 3)  # a GIF is 320 px wide by default
        same.append(np.array_equal(got, plain))
    # the counter needs two frames to measure: only burn_fps draws it, from the second frame on
    assert same == [True] * 12 if not burn_fps else same == [True] + [False] * 11
    assert [p.name for p in tmp_path.iterdir()] == ["o.gif"]


def test_no_frame_writes_nothing_and_leaves_an_older_output_alone(tmp_path):
    out = tmp_path / "o.gif"
    out.write_bytes(b"an older run's gif")
    report = process(Frames(0), OneFace(), LoopOptions(out, progress=False))
    assert report["frames_processed"] == 0 and "output" not in report
    assert out.read_bytes() == b"an older run's gif" and [p.name for p in tmp_path.iterdir()] == ["o.gif"]


def test_a_source_shorter_than_its_header_is_warned_about(tmp_path):
    with pytest.warns(UserWarning, match=r"clip.mp4: read 6 of the 10 frames its header promises"):
        report = process(Frames(6, expected=10), OneFace(), LoopOptions(per_frame=True, progress=False))
    assert "read 6 of the 10" in report["source_warning"] and len(report["frames"]) == 6


@pytest.mark.parametrize("n, expected, max_frames", [(10, 10, None), (9, 10, None), (10, 20, 4)])
def test_no_warning_for_a_whole_source_or_a_run_stopped_early(recwarn, n, expected, max_frames):
    report = process(Frames(n, expected), OneFace(), LoopOptions(max_frames=max_frames, progress=False))
    assert "source_warning" not in report and not [w for w in recwarn if "header" in str(w.message)]
