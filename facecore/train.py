"""One training loop for every loss and backbone: CPU or CUDA (mixed precision), resumable,
DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on GPUs).

Each epoch writes ``last.pt`` (full state: model, loss centres, optimiser, scheduler, history) and,
when the validation loss improves, ``best.pt`` (an embedder checkpoint), both atomically; a rerun
with the same ``out_dir`` resumes after the last finished epoch. ``history.csv`` and
``curves.png`` follow each epoch.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from .data import PKSampler, augment, load_crops, scan_identities, shuffled_batches, split_per_identity, to_tensor
from .files import atomic_write_text
from .losses import create_loss
from .models import (checkpoint_meta, create_model, default_input_size, float_state_dict, read_checkpoint,
                     save_checkpoint)
from .validate import embedding_spread, evaluate_classifier, evaluate_pairs, lfw_eval


@dataclass
class TrainConfig:
    """Everything a run depends on (stored in every checkpoint)."""

    data_dir: str = "cache/aligned/celeba-112"
    arch: str = "efficientnet-b0"
    loss: str = "arcface"
    loss_kwargs: dict = field(default_factory=dict)
    embedding_dim: int = 512
    input_size: int = 0  # 0: the architecture's default (facecore.models.default_input_size)
    min_images: int = 10
    max_identities: int | None = None
    val_fraction: float = 0.1
    epochs: int = 20
    batch_size: int = 128
    p_identities: int = 32  # triplet: P identities x K images per batch
    k_images: int = 4
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    lfw_dir: str | None = "cache/aligned/lfw-112"
    lfw_pairs: str | None = None
    cache_dir: str = "cache/crops"
    max_steps_per_epoch: int | None = None
    bn_calibration_batches: int = 20
    lfw_every: int = 2  # LFW accuracy every N epochs (and at the last one)
    num_threads: int | None = None
    init_from: str | None = None  # checkpoint to start from (fine-tuning); None: random initialisation
    cpu_bf16: bool = False  # CPU training under bfloat16 autocast (~1.8x faster where the CPU has AVX512-BF16)


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _setup_distributed(device: str) -> str:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if device.startswith("cuda"):
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    return device


class _Joint(torch.nn.Module):
    """Model + loss in one module, so DDP synchronises class centres too."""

    def __init__(self, model, loss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x, y):
        emb = self.model(x)
        return self.loss(emb, y), emb


def _autocast(device: str, cpu_bf16: bool):
    """Mixed precision for the forward pass: float16 on CUDA, bfloat16 on the CPU when asked."""
    if device.startswith("cuda"):
        return torch.autocast("cuda")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16)


def _lr_at(cfg: TrainConfig, step: float, total: float) -> float:
    warm = cfg.warmup_epochs / max(cfg.epochs, 1) * total
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))


def train(cfg: TrainConfig, out_dir: str | os.PathLike, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train (or resume) a run in ``out_dir``; returns the per-epoch history."""
    from tqdm.auto import tqdm

    device = _setup_distributed(device)
    rank, world = _dist()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    from .experiment import project_path

    out = project_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    input_size = cfg.input_size or default_input_size(cfg.arch)
    fs = scan_identities(project_path(cfg.data_dir), cfg.min_images, cfg.max_identities)
    train_set, val_set = split_per_identity(fs, cfg.val_fraction, cfg.seed)
    crops = load_crops(fs, 112 if input_size > 64 else 72, project_path(cfg.cache_dir), progress and rank == 0)
    index = {p: i for i, p in enumerate(fs.paths)}
    tr_rows = np.array([index[p] for p in train_set.paths])
    va_rows = np.array([index[p] for p in val_set.paths])

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, embedding_dim=cfg.embedding_dim).to(device, memory_format=torch.channels_last)
    loss_kwargs = dict(cfg.loss_kwargs)
    if cfg.loss != "triplet":
        loss_kwargs.update(embedding_dim=cfg.embedding_dim, num_classes=len(fs.classes))
    loss_fn = create_loss(cfg.loss, **loss_kwargs).to(device)
    joint = _Joint(model, loss_fn)
    params = [{"params": model.parameters()},
              {"params": loss_fn.parameters(), **({} if getattr(loss_fn, "weight_decay", True) else {"weight_decay": 0.0})}]
    opt = (torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
           if cfg.optimizer == "sgd" else torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
    history: list[dict] = []
    start_epoch, best_val = 0, float("inf")
    last_path = out / "last.pt"
    if last_path.exists():
        state = read_checkpoint(last_path)
        stored = {**asdict(TrainConfig()), **state["meta"]["config"]}  # fields added since take defaults
        if stored != asdict(cfg):
            raise ValueError(f"{last_path} was written by another configuration; use a new output folder "
                             f"or delete it to start again")
        model.load_state_dict(state["state_dict"])
        loss_fn.load_state_dict(state["loss_state"])
        opt.load_state_dict(state["optimizer"])
        history = json.loads(state["history_json"])
        start_epoch, best_val = len(history), float(state["best_val"])
        if rank == 0:
            print(f"resuming {out} after epoch {start_epoch}")
    elif cfg.init_from:
        from .warmstart import warm_start

        note = warm_start(model, loss_fn, project_path(cfg.init_from), cfg.arch, cfg.embedding_dim, fs.classes)
        if rank == 0:
            print(f"starting from {note}")
    ddp = torch.nn.parallel.DistributedDataParallel(joint) if world > 1 else joint
    use_amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    sampler = PKSampler(train_set.labels, cfg.p_identities, cfg.k_images, cfg.seed) if cfg.loss == "triplet" else None
    meta = lambda metrics: checkpoint_meta(cfg.arch, cfg.embedding_dim, input_size, fs.classes, asdict(cfg), metrics)  # noqa: E731

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        gen.manual_seed(cfg.seed * 100003 + epoch * 101 + rank)
        if sampler is not None:
            sampler.epoch = epoch
            batches = list(sampler)
        else:
            batches = shuffled_batches(len(tr_rows), cfg.batch_size, cfg.seed, epoch)
        if cfg.max_steps_per_epoch:
            batches = batches[: cfg.max_steps_per_epoch]
        batches = batches[: len(batches) // world * world] if world > 1 else batches
        mine = batches[rank::world]
        steps_per_epoch = len(batches) // world
        ddp.train()
        tot, n_seen, n_samples = 0.0, 0, 0
        bar = tqdm(mine, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress or rank > 0, leave=False)
        for step, b in enumerate(bar):
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, epoch * steps_per_epoch + step, cfg.epochs * steps_per_epoch)
            x = augment(to_tensor(crops[tr_rows[b]], input_size), gen).to(device)
            y = torch.from_numpy(train_set.labels[b]).to(device)
            with _autocast(device, cfg.cpu_bf16):
                loss, _ = ddp(x, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            tot += float(loss.detach()) * len(b)
            n_seen += len(b)
            bar.set_postfix(loss=f"{tot / n_seen:.3f}")
        n_samples = n_seen
        if world > 1:
            t = torch.tensor([tot, n_seen], dtype=torch.float64)
            dist.all_reduce(t)
            tot, n_samples = float(t[0]), int(t[1])
        row = {"epoch": epoch + 1, "train_loss": tot / max(n_samples, 1), "samples": n_samples,
               "lr": opt.param_groups[0]["lr"], "epoch_s": round(time.time() - t0, 1)}
        calib = [crops[tr_rows[b]] for b in batches[: cfg.bn_calibration_batches]]
        recalibrate_bn(model, [to_tensor(c, input_size).to(device) for c in calib])
        if rank == 0:
            with_lfw = (epoch + 1) % max(cfg.lfw_every, 1) == 0 or epoch + 1 == cfg.epochs
            row.update(_validate(cfg, model, loss_fn, crops, va_rows, val_set.labels, input_size, device, with_lfw))
            history.append(row)
            improved = row["val_loss"] < best_val
            best_val = min(best_val, row["val_loss"])
            extra = {"loss_state": loss_fn.state_dict(), "optimizer": opt.state_dict(),
                     "history_json": json.dumps(history), "best_val": best_val}
            if improved:
                save_checkpoint(out / "best.pt", model, meta({**row, "selected": "min_val_loss"}))
            save_checkpoint(last_path, model, meta({**row, "selected": "last_epoch"}), extra=extra)
            write_history(history, out)
            if progress:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        if world > 1:
            dist.barrier()
    return pd.DataFrame(history)


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """Recompute BatchNorm running statistics as exact averages over ``batches`` ("precise BN").

    Momentum-averaged statistics lag the weights (badly so with efficientnet-pytorch's TF-style
    momentum, and early in training), and eval-mode embeddings can collapse to a constant; this
    makes eval mode see the current network.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or not batches:
        return
    was_training = model.training
    saved = [m.momentum for m in bns]
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    for x in batches:
        model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.train(was_training)


def _validate(cfg, model, loss_fn, crops, va_rows, va_labels, input_size, device, with_lfw=True) -> dict:
    model.eval()
    with torch.inference_mode():
        embs = []
        for i in range(0, len(va_rows), 256):
            embs.append(model(to_tensor(crops[va_rows[i:i + 256]], input_size).to(device)).float().cpu())
        emb = torch.cat(embs)
        y = torch.from_numpy(va_labels)
        res = {"val_spread": embedding_spread(emb.numpy())}
        if cfg.loss == "triplet":
            res["val_loss"] = float(loss_fn(emb, y))
            res["val_verif_acc"] = evaluate_pairs(emb.numpy(), va_labels)
        else:
            res.update(evaluate_classifier(loss_fn, emb.to(device), y.to(device)))
        from .experiment import project_path

        if with_lfw and cfg.lfw_dir and project_path(cfg.lfw_dir).is_dir():
            try:
                res.update(lfw_eval(model, str(project_path(cfg.lfw_dir)), input_size, device, cfg.lfw_pairs))
            except FileNotFoundError as e:  # no pairs.txt here: LFW is optional during training
                print(f"LFW evaluation skipped: {e}")
    model.train()
    return res


def write_history(history: list[dict], out: Path) -> None:
    df = pd.DataFrame(history)
    atomic_write_text(out / "history.csv", df.to_csv(index=False))
    try:
        from .plots import training_curves

        fig = training_curves(df)
        tmp = out / ".curves.tmp.png"
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
        os.replace(tmp, out / "curves.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:
        pass


def export_for_shipping(src: str | os.PathLike, dst: str | os.PathLike, metrics: dict | None = None,
                        mantissa_bits: int = 10) -> None:
    """Copy an embedder checkpoint as fp16 weights (no optimiser state, ``mantissa_bits`` of 10 kept),
    merging ``metrics`` into meta."""
    blob = read_checkpoint(src)
    meta = dict(blob["meta"])
    meta["metrics"] = {**meta.get("metrics", {}), **(metrics or {})}
    model = create_model(meta["arch"], embedding_dim=meta["embedding_dim"])
    model.load_state_dict(float_state_dict(blob["state_dict"]))
    save_checkpoint(dst, model, meta, half=True, mantissa_bits=mantissa_bits)


def main(argv: list[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m facecore.train --out DIR [--config cfg.json] [--set k=v ...]``"""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m facecore.train", description="Train an embedding model.")
    ap.add_argument("--out", required=True, help="run folder (resumes when it holds last.pt)")
    ap.add_argument("--config", help="JSON file with TrainConfig fields")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override one field")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    fields = json.loads(Path(args.config).read_text()) if args.config else {}
    for item in args.set:
        k, v = item.split("=", 1)
        fields[k] = json.loads(v)
    unknown = set(fields) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        ap.error(f"unknown config field(s) {sorted(unknown)}; valid: {sorted(TrainConfig.__dataclass_fields__)}")
    train(TrainConfig(**fields), args.out, device=args.device, progress=not args.quiet)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
