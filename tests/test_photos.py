"""The library API for photos: Recognizer.identify (stateless; path, PIL, RGB, grey, BGR with the flag)
and verify, with the default model and the demo gallery on frames of the demo clip; errors name the
parameter, never a command-line flag."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import need_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LIN, CLOSE_UPS, AUDIENCE = "Lin_Manuel_Miranda", (120, 150), 250  # frames (tests/test_realtime.py)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    from facecore.recognition.recognize import Recognizer

    people = need_data("demo", "people_faces")
    with pytest.warns(UserWarning, match="2 faces found"):  # one enrolled photo shows two people
        return Recognizer.from_name(people_faces=people, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def frames() -> dict[int, np.ndarray]:
    from facecore.recognition.video import open_source

    src = open_source(need_data("demo", "short_hamilton_clip.mp4"))
    out = {i: f for i, f in enumerate(src) if i in (*CLOSE_UPS, AUDIENCE)}
    src.close()
    return out


def _named(faces) -> list[tuple[str, float]]:
    return [(f.name, round(f.similarity, 4)) for f in faces]


def test_identify_names_the_performer_from_a_path_pil_rgb_and_grey(rec, frames, tmp_path):
    frame = frames[CLOSE_UPS[1]]
    faces = rec.identify(frame)
    assert [f.name for f in faces] == [LIN] and faces[0].similarity > rec.threshold
    assert faces[0].box.shape == (4,) and faces[0].landmarks.shape == (5, 2) and faces[0].track_id == -1
    x1, y1, x2, y2 = faces[0].box
    assert (faces[0].landmarks[:, 0] > x1).all() and (faces[0].landmarks[:, 1] < y2).all()
    Image.fromarray(frame).save(tmp_path / "f.png")
    for same in (tmp_path / "f.png", str(tmp_path / "f.png"), Image.fromarray(frame)):
        assert _named(rec.identify(same)) == _named(faces)
    grey = np.asarray(Image.fromarray(frame).convert("L"))
    assert [f.name for f in rec.identify(grey)] == [LIN]
    assert _named(rec.identify(grey[:, :, None])) == _named(rec.identify(grey))
    assert rec.frame_index == -1 and rec.tracks == []  # stateless: the video tracker is untouched


def test_bgr_only_with_the_flag(rec, frames):
    frame = frames[CLOSE_UPS[0]]
    bgr = np.ascontiguousarray(frame[:, :, ::-1])
    assert _named(rec.identify(bgr, bgr=True)) == _named(rec.identify(frame))
    assert rec.identify(bgr)[0].similarity < rec.identify(frame)[0].similarity - 0.05  # why the flag exists
    assert [f.name for f in rec.process(bgr, bgr=True)] == [LIN]  # the video tracker takes the flag too


def test_verify(rec, frames):
    same = rec.verify(frames[CLOSE_UPS[0]], frames[CLOSE_UPS[1]])
    assert same.same and same.similarity >= same.threshold == rec.threshold
    other = rec.verify(frames[CLOSE_UPS[0]], frames[AUDIENCE])
    assert not other.same and other.similarity < rec.threshold
    np.testing.assert_allclose(same.box_a, rec.identify(frames[CLOSE_UPS[0]])[0].box)
    with pytest.raises(ValueError, match=r"^b: no face found in the photo"):
        rec.verify(frames[CLOSE_UPS[0]], np.full((120, 160, 3), 128, np.uint8))


def test_errors_name_parameters_not_flags(rec, tmp_path):
    from facecore.recognition.recognize import Recognizer
    from facecore.recognition.recognizer import ModelChoiceError, cli_message

    cases = [
        (lambda: rec.identify(3), TypeError, r"^image: expected a file path"),
        (lambda: rec.identify(tmp_path / "none.jpg"), FileNotFoundError, r"^image=.*none\.jpg: no such file"),
        (lambda: rec.identify(np.zeros((9, 9, 3), np.float64)), ValueError, r"^image: array of dtype float64"),
        (lambda: rec.verify(np.zeros((9, 9, 2), np.uint8), "x"), ValueError, r"^a: array of shape"),
        (lambda: rec.process("nope.png"), FileNotFoundError, r"^frame=nope\.png: no such file"),
        (lambda: Recognizer.from_name(model_name="nope"), ModelChoiceError, r"^model_name: unknown model name 'nope'"),
        (lambda: Recognizer.from_name(people_faces=tmp_path / "no"), ModelChoiceError, r"^people_faces=.*no: no such folder"),
        (lambda: Recognizer.from_name(people_faces=3), TypeError, r"^people_faces: expected a folder path"),
        (lambda: Recognizer.from_name(people_faces=tmp_path, threshold=2.0), ModelChoiceError, r"^threshold=2\.0: must"),
        (lambda: Recognizer.from_name("default", tmp_path), TypeError, r"positional"),  # keyword arguments only
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match) as e:
            call()
        assert "--" not in str(e.value), e.value
    assert cli_message("threshold=2.0: must be ...") == "--threshold 2.0: must be ..."  # what a command line shows
    assert cli_message("model_name: unknown; or give checkpoint=PATH") == "--model_name: unknown; or give --checkpoint PATH"


def test_the_library_api_is_at_the_top_of_the_package():
    import facecore
    from facecore.recognition.photos import Verification
    from facecore.recognition.recognize import FaceResult, Recognizer

    assert (facecore.Recognizer, facecore.FaceResult, facecore.Verification) == (Recognizer, FaceResult, Verification)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        facecore.nope  # noqa: B018
