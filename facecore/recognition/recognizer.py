"""A ready ``Recognizer`` from a model name: checkpoint resolution, threshold choice, gallery.

    rec = Recognizer.from_name(people_faces="people_faces")   # the default model, its 1 % FPR threshold
    faces = rec.identify("photo.jpg")                         # or rec.process(frame) on video

The model is a shipped model's name (``facecore.core.zoo_table.params``; default ``DEFAULT_MODEL``) or a
checkpoint file; the threshold is the one the checkpoint stores for LFW false-positive rate ``fpr``
(``meta["thresholds_by_fpr"]``), a given ``threshold``, or a fallback with a warning. Bad choices
raise ``ModelChoiceError`` (a ValueError) with one line naming the parameter (``model_name``,
``threshold=...``) and what to do; a command line shows them as its flags with ``cli_message``.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

from ..core import zoo, zoo_table
from ..core.checks import check_cosine
import torch

from ..core.paths import PROJECT_ROOT
from ..networks.models import load_embedder

# Default operating point: the threshold at which 1 % of LFW's mismatched pairs pass. With the
# default model, 3 % names an audience member on the demo clip, while 1 % still names the performer's
# close-ups; see README "Real-time recognition". A distilled student with a teacher-space head is
# matched with its backbone's own embedding unless head=True (``Embedder.without_head``): on the clip
# its head named an audience member at 1 % and fewer of the performer's face-frames at 0.1 %.
REALTIME_FPR = 0.01
DEFAULT_DATA = "../shared/data"
# the parameters whose names errors show as ``name=value``; a command line shows them as ``--name value``
CLI_PARAMS = ("model_name", "checkpoint", "people_faces", "fpr", "threshold", "device", "source", "cam",
              "output_path", "cache_dir")
# Used (with a warning) when a checkpoint stores no calibrated threshold (meta["threshold"]): a
# typical cosine for face embedders (FaceNet's usual L2 distance 1.1 is cosine 1 - 1.1**2 / 2 = 0.40),
# no substitute for calibrating the model on LFW.
FALLBACK_THRESHOLD = 0.4


class ModelChoiceError(ValueError):
    """A model name, checkpoint, FPR or threshold that cannot be used (one line, says what to do)."""


def cli_message(message: str) -> str:
    """A library error as a command line shows it: ``threshold=nan`` -> ``--threshold nan``,
    ``model_name:`` -> ``--model_name:`` (for the parameters of ``CLI_PARAMS``)."""
    names = "|".join(CLI_PARAMS)
    message = re.sub(rf"(?<![\w-])({names})=", r"--\1 ", message)
    return re.sub(rf"^({names}):", r"--\1:", message)


def input_path(path: str | os.PathLike) -> Path:
    """``path``; one under the default data folder (../shared/data/...) that is absent is looked up
    under ``$FACECORE_DATA`` instead, so `make demo`'s command works wherever the data lives."""
    p = Path(path)
    env = os.environ.get("FACECORE_DATA")
    parts = Path(DEFAULT_DATA).parts
    if not p.exists() and env and p.parts[: len(parts)] == parts:
        return Path(env).expanduser().joinpath(*p.parts[len(parts):])
    return p


def check_threshold(threshold: float | None) -> None:
    """A cosine-similarity threshold must be finite and in [-1, 1] (``facecore.core.checks.check_cosine``,
    which also checks the thresholds a checkpoint stores)."""
    if threshold is not None:
        try:
            check_cosine(threshold, "threshold")
        except ValueError:
            raise ModelChoiceError(f"threshold={threshold}: must be a cosine similarity, a finite number in [-1, 1]") from None


def resolve_checkpoint(model_name: str | None = None, checkpoint: str | os.PathLike | None = None) -> Path:
    """The checkpoint file: ``checkpoint``, else shipped model ``model_name`` (default ``DEFAULT_MODEL``),
    looked for where ``facecore.core.zoo`` says."""
    if checkpoint:
        if not Path(checkpoint).is_file():
            raise ModelChoiceError(f"checkpoint={checkpoint}: no such file")
        return Path(checkpoint)
    name = model_name or zoo_table.DEFAULT_MODEL
    if name is None:
        raise ModelChoiceError("model_name: none given and no default model is set; valid names: "
                               f"{', '.join(sorted(zoo_table.params)) or '(none shipped yet)'}; or give checkpoint=PATH")
    try:
        return zoo.checkpoint_path(name)
    except KeyError as e:
        raise ModelChoiceError(f"model_name: {e.args[0]}") from None
    except zoo.ModelNotFoundError as e:
        raise ModelChoiceError(f"model_name: {e}") from None


def calibration_sets(meta: dict) -> str:
    """The sets a checkpoint's thresholds were calibrated on, in words ("LFW" when it does not say; with
    several, each threshold is the strictest of theirs)."""
    on = meta.get("calibrated_on") or ["LFW"]
    return on[0] if len(on) == 1 else f"the strictest of {', '.join(on[:-1])} and {on[-1]}"


def choose_threshold(meta: dict, fpr: float = REALTIME_FPR, threshold: float | None = None,
                     source: str = "checkpoint") -> tuple[float, str]:
    """(threshold, where it comes from): ``threshold``, else the checkpoint's for LFW FPR ``fpr``."""
    check_threshold(threshold)
    if threshold is not None:
        return float(threshold), "--threshold"
    table = meta.get("thresholds_by_fpr") or {}
    if table:
        match = [k for k in table if math.isclose(float(k), fpr, rel_tol=1e-6)]
        if not match:
            raise ModelChoiceError(f"fpr={fpr}: {source} stores thresholds for FPR "
                                   f"{', '.join(sorted(table, key=float))}; pick one or give threshold=COSINE")
        return float(table[match[0]]), f"checkpoint, calibrated on {calibration_sets(meta)} at FPR {float(match[0]):g}"
    if meta.get("threshold") is not None:
        at = meta.get("threshold_fpr")
        warnings.warn(f"{source} stores one threshold (LFW FPR {at}), not a table; fpr is ignored", UserWarning)
        return float(meta["threshold"]), f"checkpoint, calibrated on {calibration_sets(meta)} at FPR {at}"
    warnings.warn(f"{source} stores no calibrated threshold (meta['threshold']); using the fallback "
                  f"{FALLBACK_THRESHOLD} (give threshold=COSINE to override)", UserWarning)
    return FALLBACK_THRESHOLD, "fallback"


def load_model(model_name: str | None = None, checkpoint: str | os.PathLike | None = None, fpr: float = REALTIME_FPR,
               threshold: float | None = None, device: str = "cpu", head: bool = False):
    """(embedder, threshold, where the threshold comes from); ``head``: a distilled student's teacher-space
    head, not its backbone's own embedding (``Embedder.without_head``)."""
    check_threshold(threshold)
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelChoiceError("device=cuda: torch sees no CUDA GPU here; use device=cpu")
    path = resolve_checkpoint(model_name, checkpoint)
    try:
        embedder = load_embedder(path, device=device)
        embedder = embedder if head else embedder.without_head()
    except (FileNotFoundError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise ModelChoiceError(f"checkpoint: {first if len(first) < 160 else first[:157] + '...'}") from None
    if head and not embedder.meta.get("head"):
        raise ModelChoiceError(f"head (--head): {path.name} has no teacher-space head, only its own embedding; "
                               "drop --head (a distilled student exported with HEAD has one)")
    thr, origin = choose_threshold(embedder.meta, fpr, threshold, path.name)
    return embedder, thr, origin
