"""What a training run keeps between epochs besides weights: every random generator (so a resumed run
equals an uninterrupted one) and the history (``history.csv``, ``curves.png``)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from .files import atomic_write_text


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


def restore_rng(states: list[dict] | None, rank: int, world: int, gen: torch.Generator, device: str) -> int | None:
    """Put back this rank's generators from ``rng_states`` output; returns the sampler position, or
    None (nothing restored) when ``states`` is missing or from another number of processes."""
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
    return r.get("sampler_epoch")


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
        from .plots import training_curves

        fig = training_curves(df)
        tmp = out / ".curves.tmp.png"
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
        os.replace(tmp, out / "curves.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:
        pass
