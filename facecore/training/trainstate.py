"""What a training run keeps between epochs besides weights: every random generator (so a resumed run
equals an uninterrupted one) and the history (``history.csv``, ``curves.png``)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from ..core.checkpoint import load_weights, read_checkpoint
from ..core.files import atomic_output, atomic_write_text
from ..evaluation.plots import training_curves


def rng_states(gen: torch.Generator, sampler_epoch: int | None, device: str, world: int) -> list[dict]:
    """Every random generator of every rank (in rank order; a collective call under DDP): torch (CPU,
    CUDA), numpy, python, the augmentation generator ``gen`` and the sampler's position."""
    mine = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state(),
            "augment": gen.get_state(), "sampler_epoch": sampler_epoch,
            "cuda": torch.cuda.get_rng_state_all() if device.startswith("cuda") else None}
    if world == 1:
        return [mine]
    out: list = [None] * world
    dist.all_gather_object(out, mine)
    return out


def restore_rng(states: list[dict] | None, rank: int, world: int, gen: torch.Generator, device: str) -> dict | None:
    """Put back this rank's generators from ``rng_states`` output; returns this rank's entry (with the
    sampler position), or None (nothing restored) when ``states`` is missing or from another number of
    processes."""
    if not states or len(states) != world:
        return None
    r = states[rank]
    torch.set_rng_state(r["torch"])
    if r.get("cuda") is not None and device.startswith("cuda"):
        torch.cuda.set_rng_state_all(r["cuda"])
    keys, pos, has_gauss, gauss = r["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = r["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
    gen.set_state(r["augment"])
    return r


def load_last(path: Path, config: dict, defaults: dict, model: torch.nn.Module, loss_fn: torch.nn.Module,
              opt: torch.optim.Optimizer) -> dict:
    """Load model, loss and optimiser from a run's ``last.pt`` written with ``config`` (stored fields
    missing there take ``defaults``: fields added since); returns the checkpoint dict."""
    state = read_checkpoint(path)
    if {**defaults, **state["meta"]["config"]} != config:
        raise ValueError(f"{path} was written by another configuration; use a new output folder "
                         f"or delete it to start again")
    load_weights(model, state["state_dict"], path)
    load_weights(loss_fn, state["loss_state"], path, "loss parameters (class centres)")
    opt.load_state_dict(state["optimizer"])
    return state


def restore_generators(state: dict, scaler, gen: torch.Generator, rank: int, world: int, device: str) -> int | None:
    """The scaler and random generators of a ``last.pt``; returns the sampler position (None: keep).
    One written before they were saved (or by another number of processes) resumes with fresh
    generators, as facecore did then, saying so."""
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    mine = restore_rng(state.get("rng"), rank, world, gen, device)
    if mine is None and rank == 0:
        print("last.pt holds no random-generator state for this run (written by an older facecore, or by "
              "another number of processes): resuming with fresh generators, so the result differs "
              "slightly from an uninterrupted run")
    return None if mine is None else mine.get("sampler_epoch")


def _numpy_state() -> tuple:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)


def _python_state() -> tuple:
    version, internal, gauss_next = random.getstate()
    return int(version), list(internal), gauss_next


def write_history(history: list[dict], out: Path) -> None:
    """``history.csv`` and ``curves.png`` of a run folder, atomically."""
    df = pd.DataFrame(history)
    atomic_write_text(out / "history.csv", df.to_csv(index=False))
    try:
        fig = training_curves(df)
        with atomic_output(out / "curves.png", suffix=".png") as tmp:
            fig.savefig(tmp, dpi=90, bbox_inches="tight")
        import matplotlib.pyplot as plt  # deferred: heavy (~1 s to import): only drawing a figure needs it

        plt.close(fig)
    except ImportError:
        pass
