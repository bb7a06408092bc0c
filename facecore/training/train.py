"""One training loop for every loss and backbone: CPU or CUDA (mixed precision), resumable,
DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on GPUs).

Each epoch writes ``last.pt`` (full state: model, loss centres, optimiser, scheduler, history, every
random generator) and, when the validation loss improves, ``best.pt`` (an embedder checkpoint), both
atomically; a rerun with the same ``out_dir`` resumes after the last finished epoch and continues
exactly as an uninterrupted run would. ``history.csv`` and ``curves.png`` follow each epoch.
What a loss needs (class count, a P x K sampler, weight decay) it declares itself (``facecore.networks.losses``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from PIL import Image

from ..core.checkpoint import checkpoint_meta, export_for_shipping, save_checkpoint  # noqa: F401 (re-export)
from ..core.paths import project_path
from ..core.preprocessing import ALIGN_SIZE, cache_crop_size
from ..core.runtime import autocast, dist_rank_world, progress_bar, set_threads, setup_distributed
from ..evaluation.metrics import embedding_spread
from ..networks.losses import build_loss, distill_targets
from ..networks.models import create_model, default_input_size, recalibrate_bn  # noqa: F401 (re-export)
from .data import PKSampler, augment, augmentation, load_crops, scan_identities, shuffled_batches, split_per_identity, to_tensor
from .distill import attach
from .trainconfig import TrainConfig, check_config, cli_fields
from .trainstate import load_last, restore_generators, rng_states, write_history
from .validate import evaluate_classifier, evaluate_pairs, lfw_eval
from .warmstart import warm_start


class DivergedError(ValueError):
    """The training loss or the weights became NaN or infinite: the run stops before writing anything."""


class _Joint(torch.nn.Module):
    """Model + loss in one module, so DDP synchronises class centres too."""

    def __init__(self, model, loss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x, y):
        emb = self.model(x)
        return self.loss(emb, y), emb


def _lr_at(cfg: TrainConfig, step: float, total: float) -> float:
    warm = cfg.warmup_epochs / max(cfg.epochs, 1) * total
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


@dataclass
class _Run:
    """What one training run holds between epochs."""

    cfg: TrainConfig
    out: Path
    device: str
    rank: int
    world: int
    input_size: int
    align_size: int
    classes: list[str]
    crops: np.ndarray
    tr_rows: np.ndarray
    tr_labels: np.ndarray
    va_rows: np.ndarray
    va_labels: np.ndarray
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    opt: torch.optim.Optimizer
    ddp: torch.nn.Module = None
    scaler: torch.amp.GradScaler = None
    gen: torch.Generator = None
    sampler: PKSampler | None = None
    history: list[dict] = field(default_factory=list)
    best_val: float = float("inf")
    teacher: np.ndarray | None = None  # distillation: the teacher's embedding of every row of crops

    def targets(self, rows: np.ndarray, labels: np.ndarray) -> torch.Tensor:
        """What the loss takes beside the embeddings: the identities, with the teacher's embeddings
        when distilling (``losses.distill_targets``)."""
        y = torch.from_numpy(labels)
        if self.teacher is None:
            return y
        return distill_targets(y, torch.from_numpy(self.teacher[rows]))

    def meta(self, metrics: dict) -> dict:
        return checkpoint_meta(self.cfg.arch, self.cfg.embedding_dim, self.input_size, self.classes,
                               asdict(self.cfg), metrics, align_size=self.align_size)


def train(cfg: TrainConfig, out_dir: str | os.PathLike, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train (or resume) a run in ``out_dir``; returns the per-epoch history. A configuration out of range
    raises ValueError before anything is read (``check_config``); a loss or weights that become NaN or
    infinite raise ``DivergedError`` before that epoch writes anything, so ``last.pt`` and ``best.pt``
    keep the last finite epoch."""
    check_config(cfg)
    device = setup_distributed(device)
    set_threads(cfg.num_threads)
    run = _prepare(cfg, project_path(out_dir), device, progress)
    for epoch in range(len(run.history), cfg.epochs):
        t0 = time.time()
        batches = _epoch_batches(run, epoch)
        row = _train_epoch(run, epoch, batches, progress)
        row["epoch_s"] = round(time.time() - t0, 1)
        calib = [run.crops[run.tr_rows[b]] for b in batches[: cfg.bn_calibration_batches]]
        recalibrate_bn(run.model, [to_tensor(c, run.input_size).to(device) for c in calib])
        _end_epoch(run, epoch, row, progress)
    return pd.DataFrame(run.history)


def _prepare(cfg: TrainConfig, out: Path, device: str, progress: bool) -> _Run:
    """Data, model, loss and optimiser of a run, resumed from ``out/last.pt`` or warm-started."""
    rank, world = dist_rank_world()
    augmentation(cfg.augment)  # an unknown name fails before any data is read
    out.mkdir(parents=True, exist_ok=True)
    input_size = cfg.input_size or default_input_size(cfg.arch)
    fs = scan_identities(project_path(cfg.data_dir), cfg.min_images, cfg.max_identities)
    if len(fs.classes) < 2:
        raise ValueError(f"{fs.root}: training needs at least 2 identities with >= {cfg.min_images} images, "
                         f"found {len(fs.classes)}; add identities or lower min_images")
    train_set, val_set = split_per_identity(fs, cfg.val_fraction, cfg.seed)
    crops = load_crops(fs, cache_crop_size(input_size), project_path(cfg.cache_dir), progress and rank == 0)
    index = {p: i for i, p in enumerate(fs.paths)}
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, embedding_dim=cfg.embedding_dim).to(device, memory_format=torch.channels_last)
    if input_size < getattr(model, "min_input_size", 1):
        raise ValueError(f"input_size={input_size} is below the smallest input {cfg.arch} takes "
                         f"({model.min_input_size})")
    loss_fn = build_loss(cfg.loss, dict(cfg.loss_kwargs), cfg.embedding_dim, len(fs.classes)).to(device)
    run = _Run(cfg, out, device, rank, world, input_size, _image_side(fs.root / fs.paths[0]), fs.classes, crops,
               np.array([index[p] for p in train_set.paths]), train_set.labels,
               np.array([index[p] for p in val_set.paths]), val_set.labels, model, loss_fn,
               _optimizer(cfg, model, loss_fn))
    if cfg.teacher:
        attach(run, fs, project_path(cfg.cache_dir), progress and rank == 0)
    last = out / "last.pt"
    if last.exists():
        state = load_last(last, asdict(cfg), asdict(TrainConfig()), model, run.loss_fn, run.opt)
        run.history, run.best_val = json.loads(state["history_json"]), float(state["best_val"])
        if rank == 0:
            print(f"resuming {out} after epoch {len(run.history)}")
    elif cfg.init_from:
        note = warm_start(model, loss_fn, project_path(cfg.init_from), cfg.arch, cfg.embedding_dim, fs.classes)
        if rank == 0:
            print(f"starting from {note}")
    joint = _Joint(model, loss_fn)
    run.ddp = torch.nn.parallel.DistributedDataParallel(joint) if world > 1 else joint
    run.scaler = torch.amp.GradScaler("cuda", enabled=device.startswith("cuda"))
    run.gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    if getattr(loss_fn, "sampler", "shuffled") == "pk":
        run.sampler = PKSampler(train_set.labels, cfg.p_identities, cfg.k_images, cfg.seed)
    if last.exists():  # last: everything that draws random numbers is built
        pos = restore_generators(state, run.scaler, run.gen, rank, world, device)
        if pos is not None and run.sampler is not None:
            run.sampler.epoch = int(pos)
    return run


def _optimizer(cfg: TrainConfig, model: torch.nn.Module, loss_fn: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW over the model and the loss's own parameters (without decay when the
    loss says so)."""
    decay = {} if getattr(loss_fn, "weight_decay", True) else {"weight_decay": 0.0}
    params = [{"params": model.parameters()}, {"params": loss_fn.parameters(), **decay}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: adamw, sgd")


def _image_side(path: Path) -> int:
    """Width of an aligned training crop (the alignment size the model was trained on)."""
    try:
        with Image.open(path) as im:
            return int(im.size[0])
    except OSError:
        return ALIGN_SIZE


def _epoch_batches(run: _Run, epoch: int) -> list[np.ndarray]:
    """The index batches of an epoch (all ranks' share), reseeding the augmentation generator."""
    cfg = run.cfg
    run.gen.manual_seed(cfg.seed * 100003 + epoch * 101 + run.rank)
    if run.sampler is not None:
        run.sampler.epoch = epoch
        batches = list(run.sampler)
    else:
        batches = shuffled_batches(len(run.tr_rows), cfg.batch_size, cfg.seed, epoch)
    if cfg.max_steps_per_epoch:
        batches = batches[: cfg.max_steps_per_epoch]
    return batches[: len(batches) // run.world * run.world] if run.world > 1 else batches


def _train_epoch(run: _Run, epoch: int, batches: list[np.ndarray], progress: bool) -> dict:
    """One pass over this rank's batches; the epoch's row of the history (summed over ranks)."""
    cfg, world = run.cfg, run.world
    steps_per_epoch = len(batches) // world
    run.ddp.train()
    tot, n_seen, aug = 0.0, 0, augmentation(cfg.augment)
    bar = progress_bar(batches[run.rank::world], desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
               disable=not progress or run.rank > 0, leave=False)
    for step, b in enumerate(bar):
        for g in run.opt.param_groups:
            g["lr"] = _lr_at(cfg, epoch * steps_per_epoch + step, cfg.epochs * steps_per_epoch)
        x = to_tensor(run.crops[run.tr_rows[b]], run.input_size, device=run.device)
        if aug is not None:
            x = augment(x, run.gen, **aug)
        y = run.targets(run.tr_rows[b], run.tr_labels[b]).to(run.device)
        with autocast(run.device, cfg.cpu_bf16):
            loss, _ = run.ddp(x, y)
        if world == 1 and not run.scaler.is_enabled() and not torch.isfinite(loss.detach()):
            _diverged(run, epoch, f"the training loss is {float(loss.detach())} at step {step + 1}")
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        tot += float(loss.detach()) * len(b)
        n_seen += len(b)
        bar.set_postfix(loss=f"{tot / n_seen:.3f}")
    if world > 1:
        t = torch.tensor([tot, n_seen], dtype=torch.float64)
        dist.all_reduce(t)
        tot, n_seen = float(t[0]), int(t[1])
    return {"epoch": epoch + 1, "train_loss": tot / max(n_seen, 1), "samples": n_seen,
            "lr": run.opt.param_groups[0]["lr"]}


def _end_epoch(run: _Run, epoch: int, row: dict, progress: bool) -> None:
    """Validate, then write best.pt (when improved), last.pt and the history (rank 0)."""
    cfg = run.cfg
    bad = [n for n, p in [*run.model.named_parameters(), *run.loss_fn.named_parameters()]
           if not bool(torch.isfinite(p.detach()).all())]
    if bad:  # the same on every rank (DDP keeps the weights equal): all stop here
        _diverged(run, epoch, f"{len(bad)} weight tensors are no longer finite (first: {bad[0]})")
    rng = rng_states(run.gen, run.sampler.epoch if run.sampler else None, run.device, run.world)  # collective
    if run.rank == 0:
        with_lfw = (epoch + 1) % max(cfg.lfw_every, 1) == 0 or epoch + 1 == cfg.epochs
        row.update(_validate(run, with_lfw))
        run.history.append(row)
        improved = row["val_loss"] < run.best_val
        run.best_val = min(run.best_val, row["val_loss"])
        extra = {"loss_state": run.loss_fn.state_dict(), "optimizer": run.opt.state_dict(),
                 "history_json": json.dumps(run.history), "best_val": run.best_val,
                 "scaler": run.scaler.state_dict(), "rng": rng}
        if improved:
            save_checkpoint(run.out / "best.pt", run.model, run.meta({**row, "selected": "min_val_loss"}))
        save_checkpoint(run.out / "last.pt", run.model, run.meta({**row, "selected": "last_epoch"}), extra=extra)
        write_history(run.history, run.out)
        if progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if run.world > 1:
        dist.barrier()


def _diverged(run: _Run, epoch: int, what: str) -> None:
    """Stop the run: ``DivergedError`` saying where and what to do; nothing of this epoch is written."""
    kept = f"{run.out / 'last.pt'} keeps epoch {len(run.history)}" if run.history else "nothing was written"
    raise DivergedError(f"epoch {epoch + 1}: {what}; training stopped ({kept}): lower the learning rate "
                        f"(lr={run.cfg.lr:g}) or check the data")


def _validate(run: _Run, with_lfw: bool = True) -> dict:
    """Validation loss and accuracy (classification for losses with class centres, pair verification
    otherwise), embedding spread and, when asked and available, LFW accuracy."""
    cfg, model, loss_fn, device = run.cfg, run.model, run.loss_fn, run.device
    model.eval()
    with torch.inference_mode():
        embs = [model(to_tensor(run.crops[run.va_rows[i:i + 256]], run.input_size).to(device)).float().cpu()
                for i in range(0, len(run.va_rows), 256)]
        emb = torch.cat(embs)
        y = run.targets(run.va_rows, run.va_labels)
        res = {"val_spread": embedding_spread(emb.numpy())}
        if getattr(loss_fn, "centres_key", None) is None:
            res["val_loss"] = float(loss_fn(emb, y))
            res["val_verif_acc"] = evaluate_pairs(emb.numpy(), run.va_labels)
        else:
            res.update(evaluate_classifier(loss_fn, emb.to(device), y.to(device)))
        if with_lfw and cfg.lfw_dir and not project_path(cfg.lfw_dir).is_dir():
            print(f"LFW evaluation skipped: no aligned LFW folder {project_path(cfg.lfw_dir)} "
                  "(run the align-lfw stage, or set lfw_dir/LFW_DIR)")
        elif with_lfw and cfg.lfw_dir:
            try:
                res.update(lfw_eval(model, str(project_path(cfg.lfw_dir)), run.input_size, device, cfg.lfw_pairs))
            except FileNotFoundError as e:  # no pairs.txt here: LFW is optional during training
                print(f"LFW evaluation skipped: {e}")
    model.train()
    return res


def main(argv: list[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m facecore.training.train --out DIR [--config cfg.json] [--set k=v ...]``"""
    ap = argparse.ArgumentParser(prog="python -m facecore.training.train", description="Train an embedding model.")
    ap.add_argument("--out", required=True, help="run folder (resumes when it holds last.pt)")
    ap.add_argument("--config", help="JSON file with TrainConfig fields")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override one field")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        fields = cli_fields(args.config, args.set)
    except ValueError as e:
        ap.error(str(e))
    unknown = set(fields) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        ap.error(f"unknown config field(s) {sorted(unknown)}; valid: {sorted(TrainConfig.__dataclass_fields__)}")
    try:
        train(TrainConfig(**fields), args.out, device=args.device, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as e:  # bad data or configuration: one line, exit 2
        print(f"python -m facecore.training.train: {e}", file=sys.stderr)
        return 2
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
