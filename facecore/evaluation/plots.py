"""Small matplotlib figures shared by notebooks (training curves, face grids)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ..core.files import atomic_write_bytes
from .identification import coarse_density, populated_range


def training_curves(history: pd.DataFrame):
    """Loss (train/val) and accuracy curves per epoch."""
    import matplotlib.pyplot as plt  # deferred: heavy (~1 s to import): only drawing a figure needs it

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    ax.plot(history["epoch"], history["train_loss"], "o-", label="train loss")
    if "val_loss" in history:
        ax.plot(history["epoch"], history["val_loss"], "s-", label="validation loss")
    ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.legend(); ax.grid(alpha=0.3)
    ax = axes[1]
    for col, label in [("val_acc", "validation accuracy"), ("val_verif_acc", "validation pair accuracy"),
                       ("lfw_acc", "LFW 10-fold accuracy"), ("val_spread", "embedding spread")]:
        if col in history and history[col].notna().any():
            ok = history[col].notna()  # LFW is measured every few epochs only
            ax.plot(history["epoch"][ok], history[col][ok], "o-", label=label)
    ax.set_xlabel("epoch"); ax.set_ylim(0, 1.02); ax.legend(); ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def face_grid(crops: list[np.ndarray], titles: list[str] | None = None, cols: int = 8, size: float = 1.4):
    """A grid of RGB images with optional titles."""
    import matplotlib.pyplot as plt  # deferred: heavy (~1 s to import): only drawing a figure needs it

    rows = max(1, -(-len(crops) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 1.1), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(crops):
        ax = axes.ravel()[i]
        ax.imshow(img)
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def draw_detections(ax, image: np.ndarray, box: np.ndarray | None, landmarks: np.ndarray | None, title: str = ""):
    """An image with its face box and 5 landmarks."""
    import matplotlib.patches as patches  # deferred: heavy (~1 s to import): only drawing a figure needs it

    ax.imshow(image)
    ax.axis("off")
    if box is not None and np.all(np.isfinite(box)):
        ax.add_patch(patches.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, color="lime", lw=1.5))
    if landmarks is not None and np.all(np.isfinite(landmarks)):
        ax.scatter(landmarks[:, 0], landmarks[:, 1], s=10, c=["red", "blue", "yellow", "magenta", "cyan"])
    ax.set_title(title, fontsize=7)


def roc_curves(results: dict[str, dict], fprs=None):
    """ROC curve of each model (``facecore.evaluation.idrate`` results), log-scaled FPR, TPR@FPR points marked; the
    legend sits beside the axes, off the curves."""
    import matplotlib.pyplot as plt  # deferred: heavy (~1 s to import): only drawing a figure needs it

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, r in results.items():
        f, t = r["roc_fpr"], r["roc_tpr"]
        keep = f > 0
        line, = ax.plot(f[keep], t[keep], label=f"{name} (AUC {r['auc']:.3f})")
        ax.plot(r["fprs"][r["fprs"] > 0], r["tprs"][r["fprs"] > 0], "o", ms=4, color=line.get_color())
        floor = 1.0 / r["n_negatives"]
    ax.set_xscale("log")
    ax.set_xlim(max(floor, 1e-6), 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (impostor pairs accepted)")
    ax.set_ylabel("true positive rate (same-person pairs accepted)")
    ax.set_title("Identification rate: ROC on LFW queries + distractors (dots: TPR@FPR)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _series(r: dict, kind: str) -> list[tuple[str, np.ndarray]]:
    if kind == "positives":
        return [("same person", r["hist_pos"]), ("different people", r["hist_query_neg"])]
    return [("query-query", r["hist_pos"] + r["hist_query_neg"]), ("query-distractor", r["hist_distractor_neg"])]


def similarity_distributions(results: dict[str, dict], kind: str = "positives", n_bins: int = 200, cols: int = 4):
    """A grid of panels, one per model, of pair-similarity densities on one shared x-axis:
    ``positives`` (same vs different person, query set) or ``sources`` (query-query pairs vs
    query-distractor pairs). One legend below the grid, with the pair counts of the first model."""
    import matplotlib.pyplot as plt  # deferred: heavy (~1 s to import): only drawing a figure needs it

    if kind not in ("positives", "sources"):
        raise ValueError(f"kind must be 'positives' or 'sources', got {kind!r}")
    spans = [populated_range([h for _, h in _series(r, kind)], r["bin_lower"]) for r in results.values()]
    span = (min(lo for lo, _ in spans), max(hi for _, hi in spans))
    cols = max(1, min(cols, len(results)))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows + 0.6), sharex=True, squeeze=False)
    for ax, (name, r) in zip(axes.ravel(), results.items()):
        for label, h in _series(r, kind):
            x, y = coarse_density(h, r["bin_lower"], span, n_bins)
            ax.plot(x, y, drawstyle="steps-mid", label=f"{label} ({int(np.sum(h)):,} pairs)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(results):]:
        ax.axis("off")
    for ax in axes.ravel()[max(0, len(results) - cols):len(results)]:  # nothing below these panels
        ax.set_xlabel("cosine similarity")
        ax.tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    axes[0][0].set_xlim(*span)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def save_figure(fig, path) -> None:
    """Write a figure as PNG atomically (``facecore.core.files.atomic_write_bytes``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
