"""Ablation table: each lever's paired effect on LFW, CFP-FF, CFP-FP and LFW TPR@FPR=1e-3.

    .venv/bin/python bench/ablation.py [--rows LABEL,...] [--threads 2] [--file bench/ablation.yaml]

``--file`` lists rows ``{label, model, vs, lever, note}``: ``model`` is a shipped model name or a
checkpoint (``${WORK}`` is ``$FACECORE_WORK``), ``vs`` the label of the row it differs from by one
lever (empty for a baseline). A row whose checkpoint is missing is "not run": it stays in the table,
blank, so planned levers are listed too. Each model is embedded as ``realtime.py`` matches with it
(a teacher-space head dropped: ``recognizer.load_model(head=False)``) on the aligned crops under
``cache/aligned`` (flip embeddings, cached under ``--cache_dir``), through the ``lfw``, ``cfp-ff``,
``cfp-fp`` and ``id-rate`` protocols. A row with ``vs`` gets paired deltas: over the 10 folds (mean
+- SE, folds better) and, for TPR@1e-3, over the same positive pairs, each model at its own
threshold (``metrics.paired_acceptance``: +- bootstrap SE over query identities, pairs gained/lost).
Results are kept per checkpoint (its SHA-1) under ``--results_cache``: a rerun only reads them;
rows outside ``--rows`` show their kept results when there are any. Writes ``--out``/ablation.{md,csv}.
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facecore.core import zoo, zoo_table
from facecore.core.files import atomic_write_bytes, file_digest, write_table
from facecore.core.paths import cache_root, data_root, project_path, work_root
from facecore.core.runtime import set_threads
from facecore.evaluation.embed import embed_files
from facecore.evaluation.identification import lfw_id_split
from facecore.evaluation.lfw import pair_similarities
from facecore.evaluation.metrics import (
    paired_acceptance,
    paired_difference,
    positive_pairs,
    snap,
)
from facecore.evaluation.protocols import evaluate
from facecore.networks.models import load_embedder

FOLD_PROTOCOLS = {"lfw": "LFW", "cfp-ff": "CFP-FF", "cfp-fp": "CFP-FP"}
FPRS = (1e-3, 1e-2)  # TPR@FPR of the id-rate protocol; the first gets a paired delta
VERSION = "v1"  # of a kept result: bump when what evaluate_checkpoint measures changes
FIELDS = ("label", "model", "vs", "lever", "note")


class RowsError(ValueError):
    """A rows file or --rows choice that cannot be used (one line, says what to do)."""


@dataclass
class Row:
    label: str
    model: str
    vs: str = ""
    lever: str = ""
    note: str = ""


def read_rows(path: str | Path) -> list[Row]:
    """The rows of a YAML file ``rows: [{label, model, vs, lever, note}, ...]``, checked."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise RowsError(f"--file {path}: cannot read it as YAML ({str(e).splitlines()[0]})") from None
    items = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        raise RowsError(f"--file {path}: needs a top-level 'rows:' list of mappings with keys {', '.join(FIELDS)}")
    rows = []
    for k, r in enumerate(items, 1):
        unknown = set(r) - set(FIELDS)
        if unknown or not r.get("label") or not r.get("model"):
            raise RowsError(f"--file {path}: row {k} needs 'label' and 'model' and only the keys {', '.join(FIELDS)}"
                            + (f" (unknown: {', '.join(sorted(map(str, unknown)))})" if unknown else ""))
        rows.append(Row(**{f: str(r.get(f) or "").strip() for f in FIELDS}))
    labels = [r.label for r in rows]
    for r in rows:
        if labels.count(r.label) > 1:
            raise RowsError(f"--file {path}: label {r.label!r} appears {labels.count(r.label)} times; labels must be unique")
        if r.vs and (r.vs not in labels or r.vs == r.label):
            raise RowsError(f"--file {path}: row {r.label!r} has vs {r.vs!r}, which is not another row's label")
    return rows


def select_rows(rows: list[Row], spec: str) -> set[str]:
    """Labels named in ``spec`` (comma-separated labels, which may themselves hold commas, or 1-based row
    numbers; "": all) plus the rows they are compared with, since a delta needs both."""
    labels = [r.label for r in rows]
    if not spec:
        return set(labels)
    chosen, pieces = set(), spec.split(",")
    while pieces:
        name = pieces.pop(0)
        while name.strip() not in labels and not name.strip().isdigit() and pieces:
            name += "," + pieces.pop(0)  # a label with commas in it
        name = name.strip()
        if name.isdigit() and 1 <= int(name) <= len(rows):
            name = labels[int(name) - 1]
        if name not in labels:
            raise RowsError(f"--rows: no row {name!r}; rows: " + "; ".join(f"{k} {x}" for k, x in enumerate(labels, 1)))
        chosen.add(name)
    return chosen | {r.vs for r in rows if r.label in chosen and r.vs}


def model_path(model: str) -> tuple[Path, bool]:
    """(checkpoint file, whether it is a shipped model) of a row's ``model``; the file may be missing."""
    if model in zoo_table.params:
        try:
            return zoo.checkpoint_path(model), True
        except zoo.ModelNotFoundError:
            return zoo.shipped(model)[0], True
    path = model.replace("${WORK}", str(work_root()))
    if "${" in path:
        raise RowsError(f"model {model!r}: only ${{WORK}} is substituted; give a shipped name or a checkpoint path")
    return project_path(path), False


def query_positives(embedder, cache_dir) -> dict:
    """Similarities of the id-rate protocol's positive pairs (its default query split), NaN where a photo
    failed, and each pair's identity: the pairs that a paired TPR comparison counts."""
    split = lfw_id_split(data_root() / "lfw" / "lfw-deepfunneled")
    root = cache_root() / "aligned" / "lfw-112"  # where the id-rate protocol aligns its crops
    e = embed_files([root / p for p in split.query_paths], embedder, cache_dir=cache_dir, aligned=True, progress=False)
    i, j = positive_pairs(split.query_labels)
    groups = np.unique(np.asarray(split.query_labels), return_inverse=True)[1].reshape(-1)[i]
    return {"pos_sim": snap(pair_similarities(e.embeddings, i, j)), "pos_group": groups.astype(np.int64)}


def evaluate_checkpoint(path: Path, cache_dir: Path, progress: bool = True) -> dict:
    """Fold accuracies of each fold protocol, TPR and threshold at ``FPRS``, and ``query_positives``, of the
    embedding the recognizer matches with (``load_model(head=False)``: the backbone of a headed student)."""
    embedder = load_embedder(path).without_head()
    rec = {p: np.asarray(evaluate(p, embedder, cache_dir=cache_dir, progress=progress)["accuracies"])
           for p in FOLD_PROTOCOLS}
    ids = evaluate("id-rate", embedder, cache_dir=cache_dir, fprs=list(FPRS), progress=progress)
    rec.update(fprs=np.asarray(ids["fprs"]), tprs=np.asarray(ids["tprs"]), thresholds=np.asarray(ids["thresholds"]))
    rec.update(query_positives(embedder, cache_dir))
    pos = rec["pos_sim"][np.isfinite(rec["pos_sim"])]
    again = np.array([np.mean(pos > t) for t in rec["thresholds"]])
    if not np.array_equal(again, rec["tprs"]):
        print(f"warning: {path}: TPR from the kept positive pairs {again} differs from the protocol's {rec['tprs']}",
              file=sys.stderr)
    return rec


def result_file(store: Path, digest: str) -> Path:
    return store / f"{digest[:16]}-{VERSION}.npz"


def measure(path: Path, shipped: bool, cache_dir: Path, store: Path, progress: bool = True) -> dict:
    """``evaluate_checkpoint``'s record, kept under ``store`` by the checkpoint's SHA-1. A checkpoint
    that is not shipped is read from a private copy (a training run may replace it meanwhile)."""
    with tempfile.TemporaryDirectory(dir=store if store.is_dir() else None) as tmp:
        src = path if shipped else Path(shutil.copy2(path, Path(tmp) / path.name))
        kept = result_file(store, file_digest(src, "sha1"))
        if kept.is_file():
            return load_result(kept)
        rec = evaluate_checkpoint(src, cache_dir, progress)
    buf = io.BytesIO()
    np.savez(buf, **rec)
    atomic_write_bytes(kept, buf.getvalue())
    return rec


def load_result(kept: Path) -> dict:
    with np.load(kept) as z:
        return {k: z[k] for k in z.files}


def kept_result(path: Path, store: Path) -> dict | None:
    """The kept record of a checkpoint, or None."""
    kept = result_file(store, file_digest(path, "sha1"))
    return load_result(kept) if kept.is_file() else None


def fold_delta(a: dict | None, b: dict | None, protocol: str) -> dict:
    """Columns of the fold-paired difference ``a - b`` on ``protocol``, in points ({} without both)."""
    if a is None or b is None:
        return {}
    d = paired_difference(a[protocol], b[protocol])
    name = FOLD_PROTOCOLS[protocol]
    return {f"Δ{name}": 100 * d["mean"], f"Δ{name} se": 100 * d["se"], f"Δ{name} better": f"{d['folds_better']}/{d['folds']}"}


def tpr_delta(a: dict | None, b: dict | None) -> dict:
    """Columns of ``paired_acceptance`` at ``FPRS[0]`` on the positive pairs both models embedded, in points."""
    if a is None or b is None or len(a["pos_sim"]) != len(b["pos_sim"]):
        return {}
    ok = np.isfinite(a["pos_sim"]) & np.isfinite(b["pos_sim"])
    r = paired_acceptance(a["pos_sim"][ok] > a["thresholds"][0], b["pos_sim"][ok] > b["thresholds"][0],
                          groups=a["pos_group"][ok])
    tag = f"TPR@{FPRS[0]:g}"
    return {f"Δ{tag}": 100 * r["delta"], f"Δ{tag} se": 100 * r["se"], f"{tag} gained": r["gained"], f"{tag} lost": r["lost"]}


def ablation_table(rows: list[Row], records: dict[str, dict | None], status: dict[str, str]) -> pd.DataFrame:
    """One line per row: each figure in %, deltas against its ``vs`` row in points (blank where either is missing)."""
    out = []
    for r in rows:
        rec, ref = records.get(r.label), records.get(r.vs) if r.vs else None
        line = {"row": r.label, "lever": r.lever, "vs": r.vs, "model": r.model, "status": status[r.label]}
        for p, name in FOLD_PROTOCOLS.items():
            if rec is not None:
                line.update({name: 100 * float(np.mean(rec[p])), f"{name} std": 100 * float(np.std(rec[p]))})
            line.update(fold_delta(rec, ref, p))
        if rec is not None:
            line.update({f"TPR@{f:g}": 100 * float(t) for f, t in zip(rec["fprs"], rec["tprs"])})
        line.update(tpr_delta(rec, ref))
        out.append({**line, "note": r.note})
    return pd.DataFrame(out)


def _cell(row: pd.Series, col: str, fmt: str) -> str:
    v = row.get(col)
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def ablation_markdown(table: pd.DataFrame) -> str:
    """The table as markdown: figures as mean +- std over folds, deltas as mean +- SE (folds better)."""
    t = f"TPR@{FPRS[0]:g}"
    head = ["row", "lever", "vs"]
    cells = []
    for name, short in zip(FOLD_PROTOCOLS.values(), ("LFW", "FF", "FP")):
        head += [f"{name} (%)", f"Δ{short}"]
        cells += [lambda r, n=name: _cell(r, n, "{:.2f}") + _cell(r, f"{n} std", " +- {:.2f}"),
                  lambda r, n=name: _cell(r, f"Δ{n}", "{:+.2f}") + _cell(r, f"Δ{n} se", " +- {:.2f}")
                  + _cell(r, f"Δ{n} better", " ({})")]
    head += [f"{t} (%)", f"Δ{t}", f"TPR@{FPRS[1]:g} (%)", "note"]
    cells += [lambda r: _cell(r, t, "{:.2f}"),
              lambda r: _cell(r, f"Δ{t}", "{:+.2f}") + _cell(r, f"Δ{t} se", " +- {:.2f}")
              + (f" (+{int(r[f'{t} gained'])}/-{int(r[f'{t} lost'])})" if _cell(r, f"{t} gained", "{}") else ""),
              lambda r: _cell(r, f"TPR@{FPRS[1]:g}", "{:.2f}"),
              lambda r: "; ".join(x for x in ("" if r["status"] == "measured" else r["status"], r["note"]) if x)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 4) + "---|"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join([r["row"], r["lever"], r["vs"]] + [c(r) for c in cells]) + " |")
    return "\n".join(lines) + "\n"


LEGEND = (f"\nAccuracy: mean +- std over the 10 folds. Δ: the row minus its `vs` row in points, mean +- SE over the "
          f"10 paired folds (folds where the row is better). ΔTPR@{FPRS[0]:g}: TPR difference on the same positive "
          "pairs of LFW's query set, each model at its own threshold for that FPR, +- bootstrap SE over query "
          "identities with the thresholds held fixed (+pairs only the row accepts / -pairs only its `vs` accepts). "
          "Embeddings are the ones the recognizer matches with (a student's backbone, no teacher-space head).\n")


def run(args: argparse.Namespace) -> pd.DataFrame:
    rows = read_rows(project_path(args.file))
    chosen = select_rows(rows, args.rows)
    store, cache_dir = Path(args.results_cache), project_path(args.cache_dir)
    store.mkdir(parents=True, exist_ok=True)
    records, status = {}, {}
    for r in rows:
        path, shipped = model_path(r.model)
        if not path.is_file():
            print(f"not run: {r.label}: {path} (no such file)", flush=True)
            records[r.label], status[r.label] = None, "not run"
        elif r.label in chosen:
            print(f"measuring: {r.label}: {path}", flush=True)
            records[r.label], status[r.label] = measure(path, shipped, cache_dir, store, progress=args.progress), "measured"
        else:
            records[r.label] = kept_result(path, store)
            status[r.label] = "measured" if records[r.label] is not None else "not evaluated (outside --rows)"
    table = ablation_table(rows, records, status)
    md = ablation_markdown(table) + LEGEND
    print("\n" + md)
    write_table(project_path(args.out), "ablation", table, md, "Ablation: paired effect of each lever")
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default="bench/ablation.yaml", help="the rows (YAML)")
    p.add_argument("--rows", default="", help="comma-separated labels or 1-based row numbers to measure (default: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache_dir", default="cache/embeddings", help="the embedding cache")
    p.add_argument("--results_cache", default=str(cache_root() / "ablation"), help="kept per-checkpoint results")
    p.add_argument("--out", default="bench/results", help="folder for ablation.{md,csv}")
    p.add_argument("--no_progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.exit(2, f"{p.prog}: error: --threads {args.threads}: must be at least 1\n")
    set_threads(args.threads)
    try:
        run(args)
    except RowsError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")


if __name__ == "__main__":
    main()
