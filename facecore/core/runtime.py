"""Where computation runs: the torch device, the number of CPU threads (set here and nowhere else),
torch.distributed membership and mixed precision."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; a named device is checked."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"DEVICE={name!r} but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return name


def set_threads(n: int | None) -> int:
    """Torch CPU threads (0 or None keeps the current number); returns the number before the call.
    One thread each is fastest when jobs share cores."""
    before = torch.get_num_threads()
    if n and n > 0:
        torch.set_num_threads(int(n))
    return before


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of this process under torch.distributed; (0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed(device: str) -> str:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPUs); the device to use."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if device.startswith("cuda"):
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    return device


def autocast(device: str, cpu_bf16: bool):
    """Mixed precision for the forward pass: float16 on CUDA, bfloat16 on the CPU when asked."""
    if device.startswith("cuda"):
        return torch.autocast("cuda")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bfloat16 inference is
    faster than float32; elsewhere it is emulated and slower."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def widget_frontend() -> bool:
    """Whether progress bars may be widgets: the code runs in a Jupyter kernel whose current request
    came from an interactive frontend (JupyterLab, Notebook 7 and VS Code send each cell's id; papermill
    and nbclient, which save outputs but no widget state, do not). ``FACECORE_PROGRESS=text`` or
    ``widget`` decides instead."""
    choice = os.environ.get("FACECORE_PROGRESS", "")
    if choice in ("text", "widget"):
        return choice == "widget"
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return False
    return bool((kernel.get_parent() or {}).get("metadata", {}).get("cellId"))


def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar: a widget in an interactive notebook (``widget_frontend``), else text, which
    an executed notebook keeps readable (a saved widget shows a frozen 0 %)."""
    if widget_frontend():
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(iterable, **kwargs)
