"""Small matplotlib figures shared by notebooks (training curves, face grids)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def training_curves(history: pd.DataFrame):
    """Loss (train/val) and accuracy curves per epoch."""
    import matplotlib

    matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    ax.plot(history["epoch"], history["train_loss"], "o-", label="train loss")
    if "val_loss" in history:
        ax.plot(history["epoch"], history["val_loss"], "s-", label="validation loss")
    ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.legend(); ax.grid(alpha=0.3)
    ax = axes[1]
    for col, label in [("val_acc", "validation accuracy"), ("val_verif_acc", "validation pair accuracy"),
                       ("lfw_acc", "LFW 10-fold accuracy"), ("val_spread", "embedding spread")]:
        if col in history:
            ax.plot(history["epoch"], history[col], "o-", label=label)
    ax.set_xlabel("epoch"); ax.set_ylim(0, 1.02); ax.legend(); ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def face_grid(crops: list[np.ndarray], titles: list[str] | None = None, cols: int = 8, size: float = 1.4):
    """A grid of RGB images with optional titles."""
    import matplotlib.pyplot as plt

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
    import matplotlib.patches as patches

    ax.imshow(image)
    ax.axis("off")
    if box is not None and np.all(np.isfinite(box)):
        ax.add_patch(patches.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, color="lime", lw=1.5))
    if landmarks is not None and np.all(np.isfinite(landmarks)):
        ax.scatter(landmarks[:, 0], landmarks[:, 1], s=10, c=["red", "blue", "yellow", "magenta", "cyan"])
    ax.set_title(title, fontsize=7)
