"""Project configuration: the shipped models by name, and where data lives.

``params`` maps a model name to its checkpoint (path relative to the project root), ``sha256`` the
name to the checkpoint's SHA-256; read both through ``shipped(name)``. Every name here can be passed
to ``realtime.py --model_name`` and is evaluated by ``notebooks/id-rate.ipynb``.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent

# name -> checkpoint path (fp16 state dicts written by the training notebooks)
params: dict[str, str] = {
    "ce-efficientnet": "notebooks/ce-loss/ce-efficientnet.pt",
    "arcface-efficientnet": "notebooks/arcface-loss/arcface-efficientnet.pt",
    "triplet-efficientnet-min-val-loss": "notebooks/triplet-loss/triplet-efficientnet-min-val-loss.pt",
    "triplet-efficientnet-last-epoch": "notebooks/triplet-loss/triplet-efficientnet-last-epoch.pt",
    "ce-inceptionresnetv1-min10": "notebooks/ce-loss/ce-inceptionresnetv1-min10.pt",
    "ce-inceptionresnetv1-min5": "notebooks/ce-loss/ce-inceptionresnetv1-min5.pt",
    # beyond the six reference names (issue #14): an InceptionResnetV1 taught by dlib's ResNet descriptor
    "distill-inceptionresnetv1": "notebooks/distill/distill-inceptionresnetv1.pt",
}

# name -> SHA-256 of the checkpoint file: checked whenever a shipped model is loaded
# (facecore.core.zoo.verify_shipped). Exporting over a shipped file (facecore.training.shipping.finalize_run) rewrites
# its line here; tests/test_zoo.py checks every file against it.
sha256: dict[str, str] = {
    "ce-efficientnet": "9c52a970ed6e7e6c90802558e615f1473b6dccf7d8f8407196d0c46f8767e66c",
    "arcface-efficientnet": "a425c3afb87b83beae63d41868e9fbccae2ed5a63faadfd3386eef7cafd22013",
    "triplet-efficientnet-min-val-loss": "2a8cb203b6b2dc56a5f97a728f3cd2a07e34c271506b1a89753e2a4d5113bd85",
    "triplet-efficientnet-last-epoch": "3ffea7e264aa1641b47aa721024e0e552e2059f3a340399eee551419e5febed2",
    "ce-inceptionresnetv1-min10": "60c7e63aae909506f310df91bdff96a2c792c482d1a23b64a30271939307431e",
    "ce-inceptionresnetv1-min5": "008793023a57ed4ad0ca956818dfca902658861dc3240fffb58476702fb545eb",
    "distill-inceptionresnetv1": "47c602960acc04a1c99850c2390ae0cb21eb60e8a264bd2eae73a7621fb2b942",
}

# The model realtime.py uses when --model_name is not given: the best shipped model, an InceptionResnetV1
# taught by dlib's ResNet descriptor on the CelebA set and unlabelled faces (LFW 97.93 % with its
# teacher-space head, 97.17 % for its backbone alone, which realtime.py matches with unless --head;
# README, "Distillation", "Evaluation" and "Real-time recognition").
DEFAULT_MODEL: str | None = "distill-inceptionresnetv1"


def shipped(name: str) -> tuple[Path, str | None]:
    """(absolute checkpoint path, its recorded SHA-256) of a shipped model; an unknown name lists the
    valid ones. The one reader of ``params``/``sha256``."""
    if name not in params:
        valid = ", ".join(sorted(params)) or "(none shipped yet)"
        raise KeyError(f"unknown model name {name!r}; valid names: {valid}")
    return ROOT / params[name], sha256.get(name)


def checkpoint_path(name: str) -> Path:
    """Absolute checkpoint path of a shipped model; an unknown name lists the valid ones."""
    return shipped(name)[0]
