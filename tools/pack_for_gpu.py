"""Distillation data for a GPU box that takes uploads of limited size and has no teacher: the aligned
crops re-encoded as WebP in parts of a set size, and the teacher's embedding of every crop in a table
(``teacher.npz``, ``facecore.training.teacher_table``). Unpacked there, the folders keep their layout and
``create_teacher("table", path=...)`` reads the table, so ``facecore.training.train`` runs unchanged.

    python tools/pack_for_gpu.py pack DST DIR|NAME=DIR ... [--teacher dlib] [--part_mib 60]
    python tools/pack_for_gpu.py unpack SRC DST
    python tools/pack_for_gpu.py slim LAST_PT DST [--mantissa_bits 6]

``tools/continue_on_gpu.sh`` runs there: unpack, a probe, the training that fits a time budget.

WebP at quality 80 keeps a 112 px crop at about 1.9 KB (PSNR ~37 dB against the JPEG it came from;
JPEG needs ~3.6 KB for the same); the teacher's targets are those of the original crops.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from facecore.core.checkpoint import half_state_dict, read_checkpoint, write_checkpoint
from facecore.core.files import OK, atomic_write_bytes, load_rgb
from facecore.core.paths import project_path
from facecore.core.runtime import progress_bar
from facecore.training.data import scan_identities, shuffled_batches, split_per_identity
from facecore.training.distill import scan_unlabelled
from facecore.training.teacher_table import TABLE, add_table_arguments, table_inputs, table_keys, write_table


def _webp(args: tuple[str, int]) -> bytes:
    """The WebP bytes of one image file."""
    path, quality = args
    im = load_rgb(path)
    if im.status != OK:
        raise ValueError(f"pack: cannot read {path} ({im.message}); re-run the alignment stage")
    ok, buf = cv2.imencode(".webp", im.rgb[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"pack: OpenCV could not encode {path} as WebP")
    return buf.tobytes()


def _write_parts(members: list[tuple[str, bytes]], dst: Path, part_mib: float) -> list[Path]:
    """Parts ``part-000.npz``, ... of at most ``part_mib`` MiB each (``names``, ``offsets`` and one
    ``blob`` of the files' bytes: no per-file padding, unlike tar), written atomically."""
    parts, chunk, size = [], [], 0

    def close():
        blob = b"".join(d for _, d in chunk)
        buf = io.BytesIO()
        np.savez(buf, names=np.array([n.encode() for n, _ in chunk]),
                 offsets=np.cumsum([0] + [len(d) for _, d in chunk]), blob=np.frombuffer(blob, np.uint8))
        parts.append(dst / f"part-{len(parts):03d}.npz")
        atomic_write_bytes(parts[-1], buf.getvalue())

    for name, data in members:
        if chunk and size + len(data) + 200 > part_mib * 2**20:
            close()
            chunk, size = [], 0
        chunk.append((name, data))
        size += len(data) + 200
    if chunk:
        close()
    return parts


def pack(roots: dict[str, str | os.PathLike], dst: str | os.PathLike, teacher, cache_dir: str | os.PathLike | None,
         quality: int = 80, part_mib: float = 60.0, workers: int = 2, progress: bool = True) -> dict:
    """Pack the crops under each of ``roots`` ({folder name there: folder here}) into ``dst``: parts
    (``part-000.npz``, ...) of WebP crops named ``<folder name>/<path>.webp``, and ``teacher.npz``
    (``paths``, fp16 ``embeddings`` of ``teacher``, computed or read from ``cache_dir``, and the teacher's
    ``cache_key``). Returns counts and sizes."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    table = write_table(roots, dst / TABLE, teacher, cache_dir, progress, suffix=".webp")
    keys, files = [], []
    for name, root in roots.items():
        fs = scan_unlabelled(root)
        keys += table_keys(name, fs.paths, ".webp")
        files += [str(fs.root / p) for p in fs.paths]
    jobs = [(f, quality) for f in files]
    bar = {"total": len(files), "desc": "webp", "unit": "crop", "disable": not progress}
    if workers <= 1:
        data = [_webp(j) for j in progress_bar(jobs, **bar)]
    else:
        with get_context("spawn").Pool(workers) as pool:
            data = list(progress_bar(pool.imap(_webp, jobs, chunksize=64), **bar))
    parts = _write_parts(list(zip(keys, data)), dst, part_mib)
    return {"crops": len(keys), "parts": [p.name for p in parts], "mib": sum(p.stat().st_size for p in parts) / 2**20,
            "table_mib": table["mib"]}


def unpack(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, Path]:
    """Extract every ``part-*.npz`` under ``src`` into ``dst``; check that ``src/teacher.npz`` names exactly
    the crops extracted. Returns {folder name: its path under ``dst``}."""
    src, dst = Path(src), Path(dst)
    parts = sorted(src.rglob("part-*.npz"))
    if not parts:
        raise FileNotFoundError(f"unpack: no part-*.npz under {src}")
    if not (src / TABLE).is_file():
        raise FileNotFoundError(f"unpack: no {TABLE} in {src}")
    names, made = [], set()
    for p in parts:
        with np.load(p) as z:
            part_names, offsets, blob = [n.decode() for n in z["names"]], z["offsets"], z["blob"]
        bad = [n for n in part_names if n.startswith("/") or ".." in Path(n).parts or len(Path(n).parts) < 2]
        if bad:
            raise ValueError(f"unpack: {p} holds entries outside a crop folder, e.g. {bad[:3]}")
        for n, a, b in zip(part_names, offsets[:-1], offsets[1:]):
            if (folder := (dst / n).parent) not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(folder)
            atomic_write_bytes(dst / n, blob[a:b].tobytes())  # by facecore.core.files' output rule
        names += part_names
    with np.load(src / TABLE) as z:
        listed = {k.decode() for k in z["paths"]}
    if listed != (held := set(names)):
        raise ValueError(f"unpack: {TABLE} names {len(listed)} crops, the parts hold {len(names)}; "
                         f"{len(listed - held)} are missing (pass every part)")
    return {n: dst / n for n in sorted({Path(n).parts[0] for n in names})}


def slim_state(src: str | os.PathLike, dst: str | os.PathLike, mantissa_bits: int = 6) -> float:
    """A run's ``last.pt`` cut to what ``init_from`` reads (meta, weights, the loss's tensors, e.g. class
    centres and the distill loss's map), fp16 with ``mantissa_bits`` of 10 kept, deflated: a continuation
    carried to another machine. Returns its size in MiB."""
    blob = read_checkpoint(src)
    write_checkpoint(dst, {"meta": blob["meta"], "state_dict": half_state_dict(blob["state_dict"], mantissa_bits),
                           "loss_state": half_state_dict(blob.get("loss_state") or {}, mantissa_bits)}, compress=True)
    return Path(dst).stat().st_size / 2**20


def epoch_steps(cfg, capped: bool = True) -> int:
    """Training steps in one epoch of a distillation ``TrainConfig`` (shuffled batches, as ``facecore.training.train``
    cuts them: the training split plus the unlabelled faces); ``capped``: at ``max_steps_per_epoch``."""
    fs = scan_identities(project_path(cfg.data_dir), cfg.min_images, cfg.max_identities)
    n = len(split_per_identity(fs, cfg.val_fraction, cfg.seed)[0].paths)
    if cfg.unlabelled_dir:
        n += len(scan_unlabelled(project_path(cfg.unlabelled_dir), cfg.unlabelled_limit).paths)
    steps = len(shuffled_batches(n, cfg.batch_size, cfg.seed, 0))
    return min(steps, cfg.max_steps_per_epoch) if capped and cfg.max_steps_per_epoch else steps


def main(argv: list[str] | None = None) -> int:
    """``pack DST DIR|NAME=DIR ... [--teacher dlib]``, ``unpack SRC DST`` or ``slim LAST_PT DST [--mantissa_bits 6]``."""
    ap = argparse.ArgumentParser(prog="python tools/pack_for_gpu.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="crops + teacher table -> parts")
    p.add_argument("dst")
    add_table_arguments(p)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--part_mib", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=2)
    u = sub.add_parser("unpack", help="parts -> crop folders")
    u.add_argument("src")
    u.add_argument("dst")
    m = sub.add_parser("slim", help="a run's last.pt -> a small init_from checkpoint")
    m.add_argument("src")
    m.add_argument("dst")
    m.add_argument("--mantissa_bits", type=int, default=6)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "slim":
            print(f"{a.dst}: {slim_state(a.src, a.dst, a.mantissa_bits):.1f} MiB")
            return 0
        if a.cmd == "unpack":
            print(json.dumps({k: str(v) for k, v in unpack(a.src, a.dst).items()}))
            return 0
        roots, teacher, cache_dir = table_inputs(a)
        print(json.dumps(pack(roots, a.dst, teacher, cache_dir, a.quality, a.part_mib, a.workers)))
    except (ValueError, FileNotFoundError) as e:
        print(f"python tools/pack_for_gpu.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
