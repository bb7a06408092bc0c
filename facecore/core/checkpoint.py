"""Self-describing checkpoints: save, load (with integrity checks), export for shipping, thresholds.

A checkpoint is a ``torch.save`` zip of ``{"meta": ..., "state_dict": ..., **extra}`` that loads with
``weights_only=True``. ``meta`` holds everything needed to use the weights (``checkpoint_meta``).
Every checkpoint read is checked (``check_meta``, ``check_weights``): a meta value out of range or
weights holding NaN/inf raise one line naming the file; none is ever written with such weights.
Base layer: imports only ``checks``, ``files`` and ``preprocessing``.
"""
from __future__ import annotations

import io
import os
import zipfile
import zlib
from pathlib import Path

import torch
import torch.nn as nn

from .checks import Limits, check_cosine, number_problem
from .files import atomic_write_bytes
from .preprocessing import ALIGN_SIZE, MEAN, STD

CHECKPOINT_FORMAT = "facecore-checkpoint-v1"


def checkpoint_meta(arch: str, embedding_dim: int, input_size: int, classes: list[str] | None = None,
                    config: dict | None = None, metrics: dict | None = None, align_size: int = ALIGN_SIZE) -> dict:
    """The description stored beside the weights in every checkpoint (the alignment template follows
    from ``align_size``: ``facecore.detection.align.template(align_size)``)."""
    return {"format": CHECKPOINT_FORMAT, "arch": arch, "embedding_dim": int(embedding_dim),
            "input_size": int(input_size), "align_size": int(align_size), "mean": list(MEAN), "std": list(STD),
            "classes": list(classes or []), "config": dict(config or {}), "metrics": dict(metrics or {})}


def round_mantissa(t: torch.Tensor, bits: int) -> torch.Tensor:
    """fp16 values rounded (to nearest, ties to even) to ``bits`` of fp16's 10 mantissa bits.

    The result is still an fp16 tensor; its zeroed low bits let the deflated checkpoint shrink (9 bits:
    about 6 % smaller, relative error <= 2**-10 on normal numbers, half an fp16 step more than fp16's own).
    """
    if t.dtype != torch.float16:
        raise TypeError(f"round_mantissa needs an fp16 tensor, got {t.dtype}")
    if not 1 <= bits <= 10:
        raise ValueError(f"mantissa bits must be in 1..10, got {bits}")
    drop = 10 - bits
    if drop == 0:
        return t
    u = t.view(torch.int16).to(torch.int32) & 0xFFFF  # the raw bit pattern, unsigned
    u = (u + (1 << (drop - 1)) - 1 + ((u >> drop) & 1)) & ~((1 << drop) - 1)  # sign-magnitude: carries are right
    r = (u - ((u >> 15) << 16)).to(torch.int16).view(torch.float16)
    return torch.where(torch.isfinite(t) & torch.isfinite(r), r, t)  # inf/nan stay, no value overflows to inf


def half_state_dict(state_dict: dict, mantissa_bits: int = 10) -> dict:
    """Floating tensors as fp16 with ``mantissa_bits`` of 10 kept; others unchanged."""
    sd = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state_dict.items()}
    if mantissa_bits != 10:
        sd = {k: round_mantissa(v, mantissa_bits) if v.dtype == torch.float16 else v for k, v in sd.items()}
    return sd


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict, half: bool = False,
                    extra: dict | None = None, mantissa_bits: int = 10) -> None:
    """Write weights + meta atomically; ``half`` stores fp16 weights (for shipping), deflated, with
    ``mantissa_bits`` of fp16's 10 kept."""
    sd = _unwrap(model).state_dict()
    sd = half_state_dict(sd, mantissa_bits) if half else {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    write_checkpoint(path, {"meta": meta, "state_dict": sd, **(extra or {})}, compress=half)


def checkpoint_bytes(blob: dict, compress: bool = False) -> bytes:
    """``torch.save`` bytes of ``blob``; ``compress`` deflates the zip records (lossless, about 9 %
    smaller for fp16 weights; ``torch.load`` reads them as usual, only ``mmap=True`` needs stored ones)."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    if not compress:
        return buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():  # fixed timestamps: the same checkpoint always gives the same bytes
            dst.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), src.read(info.filename),
                         zipfile.ZIP_DEFLATED, 9)
    return out.getvalue()


def write_checkpoint(path: str | os.PathLike, blob: dict, compress: bool = False) -> None:
    """Write a checkpoint dict atomically (see ``checkpoint_bytes``); weights holding NaN or inf are
    refused (``check_weights``), so a diverged model never replaces a good file."""
    check_weights(blob.get("state_dict", {}), path)
    atomic_write_bytes(path, checkpoint_bytes(blob, compress))


def is_compressed(path: str | os.PathLike) -> bool:
    """Whether a checkpoint file's zip records are deflated."""
    with zipfile.ZipFile(path) as z:
        return any(i.compress_type != zipfile.ZIP_STORED for i in z.infolist())


def verify_zip(path: str | os.PathLike) -> None:
    """Check every zip record's CRC-32 (a flipped byte anywhere in the weights is caught)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
        raise ValueError(f"{path} is corrupt ({type(e).__name__}: {e}); {_REPAIR}") from None
    if bad is not None:
        raise ValueError(f"{path} is corrupt (CRC mismatch in record {bad}); {_REPAIR}")


_REPAIR = ("restore it (git checkout / git lfs pull for a shipped model) or re-export it from its run "
           "(facecore.training.shipping.finalize_run)")


def read_checkpoint(path: str | os.PathLike, verify: bool = True) -> dict:
    """The checkpoint dict; a missing, corrupt (zip CRC, see ``verify_zip``) or foreign file raises naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if verify and zipfile.is_zipfile(path):
        verify_zip(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable facecore checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(blob, dict) or not isinstance(blob.get("meta"), dict) \
            or blob["meta"].get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a facecore checkpoint (no meta.format == {CHECKPOINT_FORMAT!r})")
    check_meta(blob["meta"], path)
    for key in ("state_dict", "loss_state"):
        check_weights(blob.get(key, {}), path)
    return blob


_META_LIMITS = {"embedding_dim": Limits(1, 65536), "input_size": Limits(8, 4096), "align_size": Limits(8, 4096)}
_FIX = "re-export it from its run (facecore.training.shipping.finalize_run)"


def check_meta(meta: dict, source: str | os.PathLike, archs: list[str] | None = None) -> None:
    """Raise ValueError naming ``source`` when a checkpoint's meta cannot describe usable weights: no
    ``arch`` (or one not in ``archs``, when given), sizes out of range, a normalisation that is not 3
    finite numbers (std > 0), or stored thresholds that are no cosine similarity (finite, in [-1, 1])."""
    problem = _meta_problem(meta, archs)
    if problem:
        raise ValueError(f"{source}: meta {problem}; {_FIX}")


def _meta_problem(meta: dict, archs: list[str] | None) -> str | None:
    arch = meta.get("arch")
    if not isinstance(arch, str) or not arch:
        return f"has no backbone name ('arch': {arch!r})"
    if archs is not None and arch not in archs:
        return f"'arch' {arch!r} is no known backbone (valid: {', '.join(archs)})"
    for key, limits in _META_LIMITS.items():
        v = meta.get(key, 112 if key == "align_size" else None)
        if isinstance(v, bool) or not isinstance(v, int):
            return f"{key!r} must be an integer, got {v!r}"
        if limits.problem(v):
            return f"{key!r} = {v} {limits.problem(v)}"
    for key in ("mean", "std"):
        v = meta.get(key, MEAN)
        if not isinstance(v, (list, tuple)) or len(v) != 3 or any(
                isinstance(x, bool) or not isinstance(x, (int, float)) or number_problem(x) for x in v):
            return f"{key!r} must be 3 finite numbers (one per colour channel), got {v!r}"
        if key == "std" and min(v) <= 0:
            return f"'std' must be positive, got {v!r}"
    if meta.get("head") and not (isinstance(meta["head"], dict) and isinstance(meta["head"].get("in_dim"), int)
                                 and meta["head"]["in_dim"] > 0):
        return f"'head' must name its input size (in_dim), got {meta['head']!r}"
    return _thresholds_problem(meta) or _thresholds_problem(meta.get("backbone") or {}, "backbone ")


def _thresholds_problem(meta: dict, where: str = "") -> str | None:
    """What is wrong with a meta's stored thresholds (``threshold``, ``threshold_fpr``, ``thresholds_by_fpr``,
    ``calibrated_on``)."""
    on = meta.get("calibrated_on")
    if on is not None and not (isinstance(on, list) and on and all(isinstance(x, str) for x in on)):
        return f"{where}'calibrated_on' must be a list of calibration set names"
    if not isinstance(meta, dict):
        return f"{where.strip()!r} must be a dict"
    table = meta.get("thresholds_by_fpr") or {}
    if not isinstance(table, dict):
        return f"{where}'thresholds_by_fpr' must be a dict of FPR -> threshold"
    pairs = [(meta.get("threshold_fpr"), meta.get("threshold"))] + list(table.items())
    for fpr, thr in pairs:
        try:
            if thr is not None:
                check_cosine(thr, f"{where}threshold" + (f" at FPR {fpr}" if fpr is not None else ""))
            if fpr is not None and number_problem(float(fpr), 0, 1, low_open=True):
                return f"{where}threshold FPR {fpr!r} must be in (0, 1]"
        except (TypeError, ValueError) as e:
            return str(e) if "cosine" in str(e) else f"{where}threshold FPR {fpr!r} is not a number"
    return None


def check_weights(state_dict: dict, source: str | os.PathLike) -> None:
    """Raise ValueError naming ``source`` when a floating tensor of ``state_dict`` holds NaN or inf."""
    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values (first: {bad[0]}); "
                         "the run that wrote them diverged - use an earlier checkpoint or train again with a "
                         "lower learning rate")


def float_state_dict(state_dict: dict) -> dict:
    """A state dict with floating tensors as float32 (shipped weights are fp16)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}


def load_weights(module: nn.Module, state_dict: dict, source: str | os.PathLike, what: str = "weights") -> None:
    """``module.load_state_dict`` (as float32) with a one-line error naming ``source`` when the
    architecture does not match the stored weights."""
    try:
        _unwrap(module).load_state_dict(float_state_dict(state_dict))
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = next((ln.strip() for ln in first[1:] if ln.strip()), first[0] if first else "")
        raise ValueError(f"{source}: its {what} do not fit a {type(_unwrap(module)).__name__} ({detail[:200]}); "
                         f"the checkpoint's meta names the wrong architecture or embedding size - "
                         f"re-export it from its run") from None


def export_for_shipping(src: str | os.PathLike, dst: str | os.PathLike, metrics: dict | None = None,
                        mantissa_bits: int = 10) -> None:
    """Copy an embedder checkpoint as deflated fp16 weights (no optimiser state, ``mantissa_bits`` of 10
    kept), merging ``metrics`` into meta."""
    blob = read_checkpoint(src)
    meta = dict(blob["meta"])
    meta["metrics"] = {**meta.get("metrics", {}), **(metrics or {})}
    sd = half_state_dict(float_state_dict(blob["state_dict"]), mantissa_bits)
    write_checkpoint(dst, {"meta": meta, "state_dict": sd}, compress=True)


def set_thresholds(path: str | os.PathLike, threshold: float, fpr: float, table: dict | None = None,
                   metrics: dict | None = None, backbone: dict | None = None,
                   calibrated_on: list[str] | None = None) -> None:
    """Store a calibrated threshold (at ``fpr``), the table by FPR and extra metrics in a checkpoint's
    meta, rewriting it in its own format; the weights are untouched. ``backbone``: the figures of a
    headed checkpoint's backbone alone (LFW, thresholds) as ``meta["backbone"]``
    (``models.Embedder.without_head`` uses them). ``calibrated_on``: the sets whose impostor pairs gave
    the thresholds (``meta["calibrated_on"]``; default LFW)."""
    compress = is_compressed(path)
    blob = read_checkpoint(path)
    blob["meta"]["threshold"], blob["meta"]["threshold_fpr"] = float(threshold), float(fpr)
    blob["meta"]["calibrated_on"] = [str(s) for s in (calibrated_on or ["LFW"])]
    blob["meta"]["metrics"] = {**blob["meta"].get("metrics", {}), **(metrics or {})}
    if table:
        blob["meta"]["thresholds_by_fpr"] = {str(k): float(v) for k, v in table.items()}
    if backbone:
        blob["meta"]["backbone"] = dict(backbone)
    write_checkpoint(path, blob, compress=compress)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
