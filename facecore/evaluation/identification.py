"""Identification-rate evaluation of embedding models on LFW: query/distractor split, embedding, tables.

Query set: LFW people with at least ``min_images`` photos (their same-person pairs are the positives).
Distractors: LFW people with exactly one photo, so the two sets share no identity, and none is a
training identity (the models train on CelebA). Used by ``notebooks/id-rate.ipynb``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.files import list_images, write_table
from ..core.paths import PROJECT_ROOT

# The committed results (id_rate/) are written only by a full-protocol run that names this folder
# explicitly; the notebooks' default output folders are under runs/.
RESULTS_DIR = PROJECT_ROOT / "id_rate"
# notebook parameter -> its value in the full protocol (a run that differs is a subset)
FULL_PROTOCOL: dict[str, object] = {"MODELS": [], "QUERY_MIN_IMAGES": 3, "MAX_QUERY_IDENTITIES": 0,
                                    "MAX_DISTRACTORS": 0, "PROTOCOLS": ["lfw", "cfp-ff", "cfp-fp", "id-rate"]}
from ..detection.detectors import resolve_detector
from ..networks.models import Embedder, checkpoint_meta, create_model
from .embed import embed_files
from .idrate import id_rate_streaming


@dataclass
class IdSplit:
    """Relative image paths (``<identity>/<file>``) of the query set (with labels) and distractors."""

    query_paths: list[str]
    query_labels: list[str]
    distractor_paths: list[str]
    counts: dict = field(default_factory=dict)


def lfw_id_split(root: str | os.PathLike, min_images: int = 3, max_query_identities: int = 0,
                 max_distractors: int = 0, seed: int = 0) -> IdSplit:
    """Split an ``<identity>/<image>`` tree into queries (>= ``min_images``) and one-photo distractors.

    ``max_*`` (0: no cap) keep a seeded random subset of query identities / distractor images.
    """
    if min_images < 2:
        raise ValueError(f"min_images must be >= 2 (a query identity needs a positive pair), got {min_images}")
    files = list_images(root)
    if not files:
        raise FileNotFoundError(f"no images below {root}")
    by_id: dict[str, list[str]] = {}
    for f in files:
        by_id.setdefault(f.split("/")[0], []).append(f)
    rng = np.random.default_rng(seed)
    query_ids = sorted(k for k, v in by_id.items() if len(v) >= min_images)
    single = sorted(v[0] for v in by_id.values() if len(v) == 1)
    if max_query_identities and len(query_ids) > max_query_identities:
        query_ids = sorted(rng.choice(query_ids, max_query_identities, replace=False).tolist())
    if max_distractors and len(single) > max_distractors:
        single = sorted(rng.choice(single, max_distractors, replace=False).tolist())
    qp = [f for k in query_ids for f in by_id[k]]
    counts = {"identities_in_folder": len(by_id), "images_in_folder": len(files),
              "query_identities": len(query_ids), "query_images": len(qp), "distractors": len(single),
              "unused_identities": sum(1 < len(v) < min_images for v in by_id.values())}
    return IdSplit(qp, [f.split("/")[0] for f in qp], single, counts)


def random_baseline(seed: int = 0, device: str = "cpu"):
    """A seeded, randomly initialised InceptionResnetV1 embedder (96 px input): the floor to beat."""
    torch.manual_seed(seed)
    model = create_model("inceptionresnetv1").to(device).eval()
    return Embedder(model, checkpoint_meta("inceptionresnetv1", 512, 96), device)


def evaluate_embedder(embedder, root: str | os.PathLike, split: IdSplit, fprs, aligned: bool,
                      cache_dir: str | os.PathLike | None = None, device: str = "cpu", progress: bool = True,
                      detector=None) -> dict:
    """Embed the split's photos (cached) and compute the streaming identification rate.

    Photos that fail to load or (``aligned=False``) have no detected face are left out; the result
    says how many (``failed_query``, ``failed_distractors``). ``detector``: a name or object
    (``facecore.detection.detectors``; default MTCNN).
    """
    root = Path(root)
    if not aligned:
        detector = resolve_detector(detector, embedder.device)  # one detector for both sets
    eq = embed_files([root / p for p in split.query_paths], embedder, detector=detector, cache_dir=cache_dir,
                     aligned=aligned, progress=progress)
    ed = embed_files([root / p for p in split.distractor_paths], embedder, detector=detector, cache_dir=cache_dir,
                     aligned=aligned, progress=progress)
    labels = np.asarray(split.query_labels)[eq.ok]
    res = id_rate_streaming(eq.embeddings[eq.ok], labels, ed.embeddings[ed.ok], fprs, device=device,
                            progress=progress)
    res.update(failed_query=int((~eq.ok).sum()), failed_distractors=int((~ed.ok).sum()),
               query_images=int(eq.ok.sum()), query_identities=len(set(labels)), distractors=int(ed.ok.sum()))
    return res


def rates_at(result: dict, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) of the rule ``similarity >= t`` at the bin edge t at or below ``threshold``."""
    edges = result["bin_lower"]
    b = int(np.clip(np.searchsorted(edges, threshold, side="right") - 1, 0, len(edges) - 1))
    neg = result["hist_query_neg"] + result["hist_distractor_neg"]
    return float(result["hist_pos"][b:].sum() / result["hist_pos"].sum()), float(neg[b:].sum() / neg.sum())


def results_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per model: TPR and threshold at each FPR, ROC-AUC, and the set sizes."""
    rows = []
    for name, r in results.items():
        row = {"model": name}
        row.update({f"TPR@FPR={f:g}": t for f, t in zip(r["fprs"], r["tprs"])})
        row["ROC-AUC"] = r["auc"]
        row.update({f"threshold@FPR={f:g}": h for f, h in zip(r["fprs"], r["thresholds"])})
        row.update({k: r.get(k) for k in ("auc_max_error", "query_identities", "query_images", "distractors",
                                          "n_positives", "n_negatives", "failed_query", "failed_distractors")})
        rows.append(row)
    return pd.DataFrame(rows)


def results_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """Markdown table of the TPR@FPR and ROC-AUC columns, the best value of each column in bold."""
    cols = [c for c in table.columns if c.startswith("TPR@") or c == "ROC-AUC"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v = f"{row[c]:.{digits}f}"
            cells.append(f"**{v}**" if len(table) > 1 and row[c] == table[c].max() else v)
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def coarse_density(hist: np.ndarray, edges: np.ndarray, value_range: tuple[float, float],
                   n_bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, density) of a ``facecore.evaluation.idrate`` histogram re-binned into ``n_bins`` over ``value_range``.

    The under- and overflow bins are drawn at the edges of the regular range.
    """
    edges = np.asarray(edges, np.float64)
    pos = np.r_[edges[1], (edges[1:-1] + np.r_[edges[2:-1], edges[-1]]) / 2, edges[-1]]
    counts, e = np.histogram(np.clip(pos, *value_range), bins=n_bins, range=value_range, weights=hist)
    return (e[:-1] + e[1:]) / 2, counts / max(counts.sum(), 1) / (e[1] - e[0])


def populated_range(hists: list[np.ndarray], edges: np.ndarray) -> tuple[float, float]:
    """The similarity range holding all counts of the histograms (regular-bin edges), slightly widened."""
    nz = np.flatnonzero(np.sum(hists, axis=0) > 0)
    lo, hi = edges[max(nz.min(), 1)], edges[min(nz.max() + 1, len(edges) - 1)]
    pad = max((hi - lo) * 0.03, 1e-6)
    return float(lo - pad), float(hi + pad)


def threshold_explorer(results: dict[str, dict]):
    """An ipywidgets box: pick a model, move the threshold, read TPR and FPR (``rates_at``) live."""
    import ipywidgets as widgets  # deferred: optional: only the notebook's threshold explorer uses it

    first = next(iter(results.values()))
    model = widgets.Dropdown(options=list(results), description="model")
    thr = widgets.FloatSlider(value=float(first["thresholds"][len(first["thresholds"]) // 2]), min=-1.0, max=1.0,
                              step=0.001, readout_format=".3f", description="threshold", continuous_update=True)
    label = widgets.HTML()

    def update(_=None) -> None:
        tpr, fpr = rates_at(results[model.value], thr.value)
        label.value = f"<b>similarity &ge; {thr.value:.3f}</b>: TPR {tpr:.4f}, FPR {fpr:.2e}"

    model.observe(update, "value")
    thr.observe(update, "value")
    update()
    return widgets.VBox([model, thr, label])


def run_scope(params: dict) -> str:
    """``"full"``, or the warning that a run is not the full protocol, naming each parameter of
    ``FULL_PROTOCOL`` that ``params`` (a notebook's ``globals()``) sets otherwise. With ``UPDATE_ROWS`` set,
    a subset of ``MODELS`` is still the full protocol: each row is measured on its own, and only those
    rows are replaced (``updated_rows``)."""
    differ = [f"{k}={params[k]!r}" for k, full in FULL_PROTOCOL.items() if k in params and params[k] != full
              and not (k == "MODELS" and params.get("UPDATE_ROWS"))]
    return "full" if not differ else ("subset, not the full protocol (" + ", ".join(differ)
                                      + "): its figures are not comparable with the committed id_rate/")


def check_output_dir(out_dir: str | os.PathLike, scope: str) -> Path:
    """``out_dir`` as a path; a subset run (``run_scope``) may not write the committed ``id_rate/``."""
    out = Path(out_dir)
    if scope != "full" and out.resolve() == RESULTS_DIR.resolve():
        raise ValueError(f"OUTPUT_DIR={str(out_dir)!r} holds the committed full-protocol results, and this run is a "
                         f"{scope.split(':')[0]}: give another OUTPUT_DIR (the default writes under runs/)")
    return out


def write_results(out_dir: str | os.PathLike, stem: str, table: pd.DataFrame, markdown: str, title: str,
                  scope: str) -> None:
    """``write_table`` with the run's scope: a ``protocol`` column in the CSV, and a warning line above a
    subset run's markdown table."""
    note = "" if scope == "full" else f"> **Not the full protocol**: {scope}.\n\n"
    write_table(out_dir, stem, table.assign(protocol=scope), note + markdown, title)


def merge_rows(old: pd.DataFrame, new: pd.DataFrame, last: tuple[str, ...] = ()) -> pd.DataFrame:
    """``old`` with the rows of each model of ``new`` replaced in place by ``new``'s, models it lacks added
    after them, and the rows named in ``last`` (published reference rows) moved to the end."""
    fresh = {r["model"]: r for r in new.to_dict("records")}
    rows = [fresh.pop(r["model"], r) for r in old.to_dict("records")] + list(fresh.values())
    ordered = [r for r in rows if r["model"] not in last] + [r for r in rows if r["model"] in last]
    return pd.DataFrame(ordered, columns=list(dict.fromkeys([*old.columns, *new.columns])))


def updated_rows(out_dir: str | os.PathLike, stem: str, table: pd.DataFrame, scope: str,
                 last: tuple[str, ...] = ()) -> pd.DataFrame:
    """The table in ``out_dir/stem.csv`` with ``table``'s models' rows replaced (``merge_rows``): what a run
    with ``UPDATE_ROWS`` writes. ``table`` itself when there is no such file yet; a ValueError naming the
    file when its rows were measured under another scope (a subset run's rows never join the full table)."""
    path = Path(out_dir) / f"{stem}.csv"
    if not path.exists():
        return table
    old = pd.read_csv(path)
    scopes = set(old["protocol"].fillna("full")) if "protocol" in old else {"full"}
    if scopes - {scope}:
        raise ValueError(f"{path}: its rows were measured as {sorted(scopes)!r}, this run as {scope!r}; "
                         "rerun without UPDATE_ROWS to write the whole table")
    return merge_rows(old.drop(columns="protocol", errors="ignore"), table, last)
