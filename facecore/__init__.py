"""facecore: detect -> align -> embed -> match, with training and evaluation for face recognition.

    from facecore import Recognizer
    rec = Recognizer.from_name(people_faces="people_faces")
    rec.identify("photo.jpg")  # [FaceResult(name, similarity, box, landmarks, ...)]
"""
__version__ = "0.1.0"

# The library API at the top, imported on first use (``import facecore`` stays light: no torch).
_LAZY = {"Recognizer": "recognition.recognize", "RecognizerConfig": "recognition.recognize", "FaceResult": "recognition.recognize",
         "Verification": "recognition.photos"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'facecore' has no attribute {name!r}")
