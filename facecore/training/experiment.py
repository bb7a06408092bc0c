"""Set-up shared by the training notebooks: a ``TrainConfig`` from a notebook's parameters, and the
summary every training notebook records.

Paths, devices, threads, export, LFW evaluation and calibration moved to ``paths``, ``runtime``,
``checkpoint`` and ``shipping``; their old names stay importable from here.
"""
from __future__ import annotations

import json

import pandas as pd

from ..core.paths import project_path  # noqa: F401 (re-exported: notebooks import it from here)
from ..core.runtime import resolve_device, set_threads
from ..core.settings import TRAINING_SETTINGS, describe, training_values
from ..networks.losses import loss_class
from .shipping import (CALIBRATION_FPRS, calibrate_checkpoint, evaluate_lfw, finalize_run,  # noqa: F401
                       save_metrics)
from .train import TrainConfig

# notebook parameter -> (TrainConfig field, whether 0 / "" mean None)
NOTEBOOK_FIELDS: dict[str, tuple[str, bool]] = {
    "DATA_DIR": ("data_dir", False), "ARCH": ("arch", False), "EMBEDDING_DIM": ("embedding_dim", False),
    "INPUT_SIZE": ("input_size", False), "MIN_IMAGES": ("min_images", False),
    "MAX_IDENTITIES": ("max_identities", True), "EPOCHS": ("epochs", False), "BATCH_SIZE": ("batch_size", False),
    "LR": ("lr", False), "WEIGHT_DECAY": ("weight_decay", False), "SEED": ("seed", False),
    "LFW_DIR": ("lfw_dir", True), "MAX_STEPS_PER_EPOCH": ("max_steps_per_epoch", True),
    "P_IDENTITIES": ("p_identities", False), "K_IMAGES": ("k_images", False), "INIT_FROM": ("init_from", True),
    "CPU_BF16": ("cpu_bf16", False), "TEACHER": ("teacher", True), "TEACHER_KWARGS": ("teacher_kwargs", False),
    "UNLABELLED_DIR": ("unlabelled_dir", True), "UNLABELLED_LIMIT": ("unlabelled_limit", False),
    "TEACHER_FLIP": ("teacher_flip", False), "TEACHER_CENTER": ("teacher_center", False), "LFW_EVERY": ("lfw_every", False),
    "AUGMENT": ("augment", False),
}


def training_config(loss: str, loss_kwargs: dict, params: dict) -> TrainConfig:
    """The ``TrainConfig`` of a training notebook: ``params`` holds its parameters (pass ``globals()``);
    the UPPER_CASE names of ``NOTEBOOK_FIELDS`` present there are used, the rest keep their defaults."""
    fields = {}
    for name, (field, none_if_empty) in NOTEBOOK_FIELDS.items():
        if name in params:
            value = params[name]
            fields[field] = (value or None) if none_if_empty else value
    return TrainConfig(loss=loss, loss_kwargs=dict(loss_kwargs), **fields)


def _loss_defaults(loss: str) -> dict:
    return dict(getattr(loss_class(loss), "training_defaults", {}))


def notebook_params(loss: str, params: dict) -> dict:
    """A training notebook's parameters (pass ``globals()``) with its ``TRAINING`` dict, if any, spread
    out: every shared setting of ``facecore.core.settings`` at its default, the loss's ``training_defaults``
    or the value ``TRAINING`` gives. Raises ValueError for a name or type ``TRAINING`` does not take."""
    if "TRAINING" not in params:
        return dict(params)
    values = training_values(params["TRAINING"], _loss_defaults(loss))
    clash = sorted(set(values) & (set(params) - {"TRAINING"}))
    if clash:
        raise ValueError(f"{', '.join(clash)}: give these in TRAINING only, not also as notebook parameters")
    return {k: v for k, v in params.items() if k != "TRAINING"} | values


def setup_training(loss: str, loss_kwargs: dict, params: dict) -> tuple[TrainConfig, str]:
    """(config, device) of a training notebook (``params``: its ``globals()``, see ``notebook_params``):
    ``training_config`` plus its ``DEVICE`` (resolved) and ``THREADS`` (applied); all are printed."""
    if "TRAINING" in params:
        given, params = params["TRAINING"], notebook_params(loss, params)
        print("shared settings (facecore.core.settings), with the source of those not at their default:\n"
              + describe({n: params[n] for n in TRAINING_SETTINGS}, given, _loss_defaults(loss)))
    set_threads(int(params.get("THREADS", 0)))
    cfg, device = training_config(loss, loss_kwargs, params), resolve_device(str(params.get("DEVICE", "auto")))
    print(f"{cfg}\ndevice: {device}")
    return cfg, device


def run_summary(cfg: TrainConfig, history: pd.DataFrame, device: str) -> dict:
    """The head of a training notebook's metrics: loss, backbone, device, epochs, time, first/last loss."""
    return {"loss": cfg.loss, "arch": cfg.arch, "device": device, "epochs": int(len(history)),
            "train_time_s": float(history.epoch_s.sum()), "first_train_loss": float(history.train_loss.iloc[0]),
            "last_train_loss": float(history.train_loss.iloc[-1]), "init_from": cfg.init_from}


def finish_training(cfg: TrainConfig, history: pd.DataFrame, device: str, params: dict,
                    exports: dict[str, tuple[str, str]] | None = None, extra: dict | None = None) -> dict:
    """The end of a training notebook (pass ``globals()`` as ``params``): ``run_summary``, then each
    exported checkpoint of ``RUN_DIR`` (fp16 with ``SHIP_MANTISSA_BITS``, LFW on ``LFW_DIR``, thresholds
    at ``THRESHOLD_FPR``; ``shipping.finalize_run``), plus ``extra``, written to ``METRICS_PATH`` and printed.

    ``exports``: {summary key: (checkpoint, export path)}; default: ``best.pt`` to ``EXPORT_PATH``, its
    metrics merged into the summary's top level (key "").
    """
    params = notebook_params(cfg.loss, params)
    summary = run_summary(cfg, history, device)
    for key, (checkpoint, path) in (exports or {"": ("best.pt", params.get("EXPORT_PATH", ""))}).items():
        m = finalize_run(params["RUN_DIR"], checkpoint, path or None, params.get("LFW_DIR") or None,
                         float(params.get("THRESHOLD_FPR", 1e-3)), device,
                         mantissa_bits=int(params.get("SHIP_MANTISSA_BITS", 10)))
        summary.update({key: m} if key else m)
    summary.update(extra or {})
    if params.get("METRICS_PATH"):
        save_metrics(params["METRICS_PATH"], summary)
    print(json.dumps(summary, indent=1, default=str))
    return summary
