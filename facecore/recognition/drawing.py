"""Annotated frames: face boxes, landmarks and name labels that do not overlap, any script's letters.

Labels are drawn with Pillow in a TrueType font that has the accented and non-Latin letters of
people's names (DejaVu Sans: the copy matplotlib ships, or the system's), sized with the output
(``font_px``), so a 320 px GIF and a 1280 px window read alike. ``place_labels`` puts each label
above its face, else below, else at the nearest free spot, so labels of close faces never cover
each other.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .tracking import UNKNOWN

if TYPE_CHECKING:  # recognize imports torch; drawing does not need it
    from .recognize import FaceResult

KNOWN_RGB, UNKNOWN_RGB, LANDMARK_RGB = (40, 200, 60), (230, 50, 50), (255, 220, 0)
FONT_FILE = "DejaVuSans.ttf"
SYSTEM_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/Library/Fonts",
                    "C:/Windows/Fonts")


def font_path() -> Path | None:
    """DejaVu Sans from matplotlib's bundled fonts (found without importing matplotlib) or a system
    folder; None when neither has it (Pillow's own default font is used then)."""
    spec = importlib.util.find_spec("matplotlib")
    dirs = [Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"] if spec and spec.origin else []
    for d in dirs + [Path(s) for s in SYSTEM_FONT_DIRS]:
        if (d / FONT_FILE).is_file():
            return d / FONT_FILE
    return None


@lru_cache(maxsize=16)
def label_font(size_px: int):
    """The label font at ``size_px`` pixels."""
    from PIL import ImageFont

    path = font_path()
    return ImageFont.truetype(str(path), size_px) if path else ImageFont.load_default(size_px)


def font_px(image_width: int) -> int:
    """Label font size for an image this wide: 1/48 of the width (13 px at 640, 27 at 1280), at least
    11 px, the smallest that stays readable (the 320 px GIF)."""
    return int(max(11, round(image_width / 48)))


def label_text(name: str, similarity: float) -> str:
    """A face's label: the name (underscores read as spaces) and its similarity when it has one."""
    shown = name.replace("_", " ")
    return f"{shown} {similarity:.2f}" if np.isfinite(similarity) else shown


def _overlaps(a: tuple, b: tuple) -> bool:
    """Whether two (x1, y1, x2, y2) rectangles (exclusive ends) share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _candidates(box: np.ndarray, w: int, h: int, width: int, height: int) -> list[tuple[int, int]]:
    """Top-left corners to try for a w x h label of ``box``, best first: above, below, then further
    up and down, then shifted sideways; every corner keeps the label inside the image."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    above, below = y1 - h - 1, y2 + 1
    ys = [above, below] + [y for k in range(1, 6) for y in (above - k * h, below + k * h)]
    ys = [y for y in ys if 0 <= y <= height - h] or [int(np.clip(above, 0, max(0, height - h)))]
    xs = [x1] + [x1 + d * w // 2 for k in range(1, 4) for d in (-k, k)]
    out = []
    for x in xs:
        for y in ys:
            c = (int(np.clip(x, 0, max(0, width - w))), y)
            if c not in out:
                out.append(c)
    return out


def place_labels(boxes: list[np.ndarray], sizes: list[tuple[int, int]], width: int, height: int) -> list[tuple]:
    """Label rectangles (x1, y1, x2, y2, exclusive ends) for faces ``boxes`` with label sizes (w, h):
    each above its face, else below, else a spot near it, else the nearest spot anywhere, that no
    earlier label covers (faces from the top of the image down), at each stage preferring spots that
    cover no other face. Labels overlap only when no free spot is left in the whole image."""
    faces = [tuple(int(round(v)) for v in b) for b in boxes]
    placed: list[tuple | None] = [None] * len(boxes)
    for i in sorted(range(len(boxes)), key=lambda k: (boxes[k][1], boxes[k][0])):
        w, h = sizes[i]
        labels = [r for r in placed if r is not None]
        others = labels + [f for j, f in enumerate(faces) if j != i]
        near = _candidates(boxes[i], w, h, width, height)
        spot = _first_free(near, w, h, others, labels) or _first_free(_grid(boxes[i], w, h, width, height), w, h,
                                                                       others, labels)
        spot = spot or near[0]
        placed[i] = (spot[0], spot[1], spot[0] + w, spot[1] + h)
    return placed


def _first_free(spots: list[tuple[int, int]], w: int, h: int, *avoid: list[tuple]) -> tuple[int, int] | None:
    """The first top-left corner whose w x h rectangle meets none of ``avoid[0]``, else of ``avoid[1]``, ..."""
    for rects in avoid:
        for x, y in spots:
            if not any(_overlaps((x, y, x + w, y + h), r) for r in rects):
                return x, y
    return None


def _grid(box: np.ndarray, w: int, h: int, width: int, height: int) -> list[tuple[int, int]]:
    """Every label position on a half-label grid over the image, nearest the face's top first."""
    cx, cy = (box[0] + box[2]) / 2, box[1]
    spots = [(x, y) for y in range(0, max(1, height - h + 1), max(1, h // 2))
             for x in range(0, max(1, width - w + 1), max(1, w // 4))]
    return sorted(spots, key=lambda c: (c[0] + w / 2 - cx) ** 2 + (c[1] + h / 2 - cy) ** 2)


def draw_faces(image: np.ndarray, faces: list["FaceResult"], scale: float = 1.0, landmarks: bool = True,
               fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` with boxes, name labels, landmarks and (when ``fps`` is given) an FPS counter.

    ``scale`` maps frame pixels to ``image`` pixels (e.g. 0.5 for a half-size output frame).
    """
    import cv2
    from PIL import Image, ImageDraw

    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    thick = max(1, round(w / 480))
    boxes = [np.asarray(f.box, np.float64) * scale for f in faces]
    colours = [KNOWN_RGB if f.name != UNKNOWN else UNKNOWN_RGB for f in faces]
    for box, colour in zip(boxes, colours):
        x1, y1, x2, y2 = box.round().astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
    if landmarks:
        for f in faces:
            for x, y in np.asarray(f.landmarks) * scale:
                cv2.circle(out, (int(round(x)), int(round(y))), thick, LANDMARK_RGB, -1, cv2.LINE_AA)
    font, pad = label_font(font_px(w)), max(1, font_px(w) // 6)
    texts = [label_text(f.name, f.similarity) for f in faces]
    if not texts and fps is None:
        return out
    im = Image.fromarray(out)
    draw = ImageDraw.Draw(im)
    ascent, descent = font.getmetrics()
    sizes = [(int(draw.textlength(t, font=font)) + 2 * pad, ascent + descent + 2 * pad) for t in texts]
    for text, colour, rect in zip(texts, colours, place_labels(boxes, sizes, w, h)):
        draw.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=colour)
        draw.text((rect[0] + pad, rect[1] + pad), text, font=font, fill=(255, 255, 255))
    if fps is not None:
        draw.text((4, 4), f"{fps:5.1f} fps", font=font, fill=(255, 255, 0), stroke_width=2, stroke_fill=(0, 0, 0))
    return np.array(im)
