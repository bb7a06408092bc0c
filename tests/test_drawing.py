"""Face labels: any script's letters as Pillow draws them, and labels that never cover each other."""
from __future__ import annotations

import numpy as np
import pytest

from facecore.recognition.drawing import draw_faces, font_path, font_px, label_font, label_text, place_labels
from facecore.recognition.recognize import FaceResult


def _face(box, name: str = "José_Núñez", similarity: float = float("nan")) -> FaceResult:
    return FaceResult(np.asarray(box, np.float64), np.zeros((5, 2)), name, similarity)


def _ink(mask: np.ndarray) -> np.ndarray:
    """A boolean text mask cropped to its ink."""
    ys, xs = np.nonzero(mask)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _text_mask(frame: np.ndarray) -> np.ndarray:
    """The white label text of a frame drawn on black (the label's green has R = 40, the text 255):
    pixels more than 3/4 text."""
    return _ink((frame[..., 0] > 40 + 0.75 * 215) & (frame[..., 2] > 60 + 0.75 * 195))


def _reference_mask(text: str, size_px: int) -> np.ndarray:
    """The same threshold on Pillow's own rendering of ``text`` in the label font."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (40 * size_px, 3 * size_px))
    ImageDraw.Draw(im).text((size_px, size_px), text, font=label_font(size_px), fill=255)
    return _ink(np.asarray(im) > 0.75 * 255)


def test_a_font_with_accented_letters_is_found_without_downloads():
    assert font_path() is not None and font_path().name == "DejaVuSans.ttf"
    font = label_font(12)
    notdef = font.getmask("\uffff").getbbox()  # a code point the font has no glyph for
    for ch in "éúñçøłßЖ":
        assert font.getmask(ch).getbbox() != notdef, ch


@pytest.mark.parametrize("name", ["José_Núñez", "Łukasz_Żółć", "Zoë"])
def test_non_ascii_label_is_pillows_rendering_not_question_marks(name):
    image = np.zeros((180, 320, 3), np.uint8)
    out = draw_faces(image, [_face([120, 60, 170, 120], name, 0.73)], landmarks=False)
    got = _text_mask(out)
    text = label_text(name, 0.73)
    assert text.startswith(name.replace("_", " "))
    ref = _reference_mask(text, font_px(320))
    assert got.shape == ref.shape and np.array_equal(got, ref)
    # what cv2.putText drew before: every non-ASCII letter as "?"
    ascii_only = "".join(c if ord(c) < 128 else "?" for c in text)
    bad = _reference_mask(ascii_only, font_px(320))
    assert got.shape != bad.shape or not np.array_equal(got, bad)


def test_label_text_scales_with_the_output_width():
    assert font_px(320) >= 11 and font_px(640) > font_px(320) and font_px(1280) >= 2 * font_px(640) - 1


def _overlap_pixels(rects: list[tuple], width: int, height: int) -> int:
    """Pixels covered by more than one rectangle (brute force on a grid)."""
    cover = np.zeros((height, width), np.int32)
    for x1, y1, x2, y2 in rects:
        cover[y1:y2, x1:x2] += 1
    return int((cover > 1).sum())


@pytest.mark.parametrize("seed", range(40))
def test_labels_of_close_faces_never_overlap_and_stay_inside(seed):
    rng = np.random.default_rng(seed)
    width, height = 320, 180
    n = int(rng.integers(2, 7))
    centre = rng.uniform([60, 40], [260, 140])
    boxes, sizes = [], []
    for _ in range(n):  # faces 20-45 px within ~60 px of one another, some touching the border
        side = rng.uniform(20, 45)
        c = np.clip(centre + rng.normal(0, 30, 2), 0, [width, height])
        boxes.append(np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2]))
        sizes.append((int(rng.integers(40, 130)), 15))
    rects = place_labels(boxes, sizes, width, height)
    assert _overlap_pixels(rects, width, height) == 0, rects
    for (x1, y1, x2, y2), (w, h) in zip(rects, sizes):
        assert (x2 - x1, y2 - y1) == (w, h) and 0 <= x1 and x2 <= width and 0 <= y1 and y2 <= height


def test_a_lone_label_sits_just_above_its_face_else_below():
    (above,) = place_labels([np.array([100, 60, 140, 100])], [(60, 15)], 320, 180)
    assert above == (100, 44, 160, 59)
    (below,) = place_labels([np.array([100, 2, 140, 40])], [(60, 15)], 320, 180)
    assert below == (100, 41, 160, 56)


def test_fps_counter_only_when_given():
    image = np.zeros((180, 320, 3), np.uint8)
    faces = [_face([100, 60, 130, 95], "Alex_Lacamoire", 0.61)]
    yellow = lambda im: int((np.all(im == (255, 255, 0), axis=-1)).sum())  # noqa: E731 - the counter's colour
    assert yellow(draw_faces(image, faces, landmarks=False)) == 0
    assert yellow(draw_faces(image, faces, landmarks=False, fps=12.3)) > 20


def test_a_label_avoids_a_neighbouring_face_when_it_can():
    a, b = np.array([100, 60, 130, 95.0]), np.array([135, 40, 165, 75.0])
    label_a, label_b = place_labels([a, b], [(100, 15), (100, 15)], 320, 180)
    assert label_b == (135, 24, 235, 39)  # above its face
    assert label_a == (100, 96, 200, 111)  # above face a would cover face b: below instead
