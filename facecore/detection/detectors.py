"""Face detectors by name, as models and losses are: ``create_detector("mtcnn", min_face_frac=0.2)``.

A detector is any object with ``detect(images: list[HxWx3 uint8 RGB]) -> list[Detection]``
(``facecore.detection.detect.Detection``: boxes, scores, 5 landmarks per face). Add one with
``register_detector``::

    @register_detector("whole-image")
    class WholeImage:
        def detect(self, images):
            ...

Every detector made here carries its ``name`` and ``settings``; ``detector_key`` turns them into
the part of every embedding-cache key that says how faces were found, so a changed setting is a
cache miss.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from ..core.registry import Registry
from .detect import FaceDetector

DETECTORS = Registry("detector", add_with="facecore.detection.detectors.register_detector")
register_detector = DETECTORS.register  # register_detector("mine", factory), or as a decorator
NOT_SETTINGS = ("device",)  # where a detector runs does not change what it finds


def detector_names() -> list[str]:
    _register_builtins()
    return DETECTORS.names()


def create_detector(name: str = "mtcnn", **settings) -> Any:
    """A new detector by registered name; an unknown name raises an error listing the valid ones."""
    _register_builtins()
    det = DETECTORS.lookup(name)(**settings)
    try:
        det.name = name
        if not hasattr(type(det), "settings"):  # classes with a settings property report their own
            det.settings = {k: v for k, v in settings.items() if k not in NOT_SETTINGS}
    except AttributeError:
        pass
    return det


def resolve_detector(detector: Any = None, device: str = "cpu") -> Any:
    """``detector`` itself, a detector by name (a str), or MTCNN with its defaults (None)."""
    if detector is None:
        return create_detector("mtcnn", device=device)
    if isinstance(detector, str):
        return create_detector(detector, device=device) if detector == "mtcnn" else create_detector(detector)
    if not callable(getattr(detector, "detect", None)):
        raise TypeError(f"detector must be a name ({', '.join(detector_names())}) or an object with "
                        f"detect(images), got {type(detector).__name__}")
    return detector


def detector_key(detector: Any) -> str:
    """A short digest of a detector's name and settings (part of every embedding-cache key)."""
    name = getattr(detector, "name", None) or type(detector).__name__
    settings = getattr(detector, "settings", {}) or {}
    settings = {k: v for k, v in dict(settings).items() if k not in NOT_SETTINGS}
    blob = json.dumps([name, settings], sort_keys=True, default=repr)
    return f"{_slug(name)}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))[:32]


def _register_builtins() -> None:
    if "mtcnn" not in DETECTORS:
        DETECTORS["mtcnn"] = FaceDetector
