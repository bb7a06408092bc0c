"""Generated parts of the documentation and the notebooks, so no figure is typed by hand.

    python tools/render_docs.py           # rewrite what is stale
    python tools/render_docs.py --check   # list what is stale, exit 1 if anything is

In ``README.md`` and ``docs/*.md``, a block ``<!-- table:NAME -->`` ... ``<!-- /table -->`` holds
generated markdown: NAME is a markdown file the notebooks write (``id_rate/benchmark.md``: its table,
without its title) or one of ``GENERATORS`` below, computed from files the notebooks write (metrics
JSON, benchmark CSV) and the shipped checkpoints. The loss notebooks' ``TRAINING`` parameter lists
every shared setting at its default (``facecore.core.settings.training_block``). ``tests/test_docs.py``
checks that nothing is stale.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

from facecore.core import zoo_table
from facecore.core.files import atomic_write_text
from facecore.core.settings import TRAINING_SETTINGS, training_block
from facecore.networks.losses import loss_class

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table:(?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
LOSS_NOTEBOOKS = {"notebooks/ce-loss/ce-loss.ipynb": "ce", "notebooks/arcface-loss/arcface-loss.ipynb": "arcface",
                  "notebooks/triplet-loss/triplet-loss.ipynb": "triplet"}
REFERENCE_BUDGET_MB, TOTAL_BUDGET_MB = 120, 150  # tests/test_models.py


def _zoo() -> tuple[dict[str, str], str | None]:
    """(shipped name -> checkpoint path relative to ROOT, the default model) from the package's zoo table."""
    return dict(zoo_table.params), zoo_table.DEFAULT_MODEL


def _benchmark_rows() -> dict[str, dict[str, str]]:
    with open(ROOT / "id_rate" / "benchmark.csv", newline="") as f:
        return {r["model"]: r for r in csv.DictReader(f)}


def _cell(row: dict[str, str], col: str) -> str:
    v, sd = row.get(col, ""), row.get(f"{col} std", "")
    if v == "":
        return ""
    return f"{float(v):.2f} +- {float(sd):.2f}" if sd else f"{float(v):.4f}"


def shipped_models() -> str:
    """The shipped models as ``realtime.py`` and ``Recognizer`` run them (the benchmarks notebook evaluates
    each so: a distilled student's backbone, without a teacher-space head)."""
    params, default = _zoo()
    bench = _benchmark_rows()
    cols = ["LFW", "CFP-FF", "CFP-FP", "TPR@FPR=0.001", "TPR@FPR=0.01", "ROC-AUC"]
    lines = ["| model | " + " | ".join(c + (" (%)" if c in ("LFW", "CFP-FF", "CFP-FP") else "") for c in cols)
             + " | file (MB) |", "|---|" + "---:|" * (len(cols) + 1)]
    for name in sorted(params, key=lambda n: n != default):
        size = f"{(ROOT / params[name]).stat().st_size / 1e6:.1f}"
        label = f"`{name}`" + (" (default)" if name == default else "")
        lines.append(f"| {label} | " + " | ".join(_cell(bench[name], c) for c in cols) + f" | {size} |")
    return "\n".join(lines) + "\n"


def weights() -> str:
    """File sizes of the shipped models against the weight budgets."""
    params, _ = _zoo()
    sizes = {n: (ROOT / p).stat().st_size / 1e6 for n, p in params.items()}
    reference = sum(v for n, v in sizes.items() if not n.startswith("distill-"))
    lines = ["| shipped models | files (MB) | budget (MB) |", "|---|---:|---:|",
             f"| the six reference models | {reference:.1f} | {REFERENCE_BUDGET_MB} |",
             f"| all {len(sizes)} embedding models | {sum(sizes.values()):.1f} | {TOTAL_BUDGET_MB} |"]
    return "\n".join(lines) + "\n"


def _metrics_files() -> dict[str, dict]:
    """Shipped name -> the metrics of its export (a training notebook's ``METRICS_PATH``)."""
    params, _ = _zoo()
    out = {}
    for path in sorted((ROOT / "notebooks").glob("*/metrics*.json")):
        m = json.loads(path.read_text())
        for part in [m, *(v for v in m.values() if isinstance(v, dict) and "exported" in v)]:
            name = next((n for n, p in params.items() if p == part.get("exported")), None)
            if name:
                out[name] = {**m, **part}
    return out


def _thresholds(m: dict) -> str:
    t, on = m["thresholds_by_fpr"], m.get("calibrated_on") or ["LFW"]
    return f"{t['0.001']:.3f} / {t['0.01']:.3f} ({on[0] if len(on) == 1 else 'strictest of ' + ', '.join(on)})"


def training_runs() -> str:
    """The run behind each shipped model: loss, backbone, identities, epochs, time, validation and
    the thresholds stored in the checkpoint (LFW and the benchmarks are in the evaluation tables).
    A model with a head has thresholds for the head and for its backbone alone."""
    params, _ = _zoo()
    runs = _metrics_files()
    lines = ["| model | loss | backbone | identities | epochs | training (min) | val. accuracy | mantissa bits "
             "| threshold at FPR 1e-3 / 1e-2 (calibrated on) |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for name in (n for n in params if n in runs):
        m = runs[name]
        minutes = f"{m['train_time_s'] / 60:.1f}" if "train_time_s" in m else ""
        acc = f"{m['val_acc']:.3f}" if m.get("loss") != "triplet" and m.get("val_acc") is not None else ""
        thresholds = (f"head {_thresholds(m)}; backbone {_thresholds(m['backbone'])}" if "backbone" in m
                      else _thresholds(m))
        lines.append(f"| `{name}` | {m.get('loss', 'distill')} | {m.get('arch', 'inceptionresnetv1')} | "
                     f"{m['identities']:,} | {m.get('epochs', '')} | {minutes} | {acc} | {m['mantissa_bits']} | "
                     f"{thresholds} |")
    return "\n".join(lines) + "\n"


def settings() -> str:
    """The shared training settings of ``facecore.core.settings``."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | `{s.default!r}` | {s.help.replace('|', '/')} |" for n, s in TRAINING_SETTINGS.items()]
    return "\n".join(lines) + "\n"


def landmarks() -> str:
    """The landmark aligner against MTCNN on HELEN test, and LFW aligned with each
    (``notebooks/my-face-alignment.ipynb``)."""
    m = json.loads((ROOT / "notebooks" / "my-face-alignment" / "metrics.json").read_text())
    lfw = json.loads((ROOT / "notebooks" / "my-face-alignment" / "lfw_landmarks.json").read_text())
    names = {"mean": "the training mean (a model that learnt nothing)", "mtcnn": "MTCNN's landmarks",
             "ours": "facecore.detection.landmarks"}
    lines = [f"| predictor | eye NME mean | eye NME median | 5-point NME | LFW 10-fold of `{lfw['model']}` (%) |",
             "|---|---:|---:|---:|---:|"]
    for key, text in names.items():
        a = lfw.get({"ours": "custom"}.get(key, key))
        acc = f"{100 * a['lfw_acc']:.2f} +- {100 * a['lfw_std']:.2f}" if a else ""
        lines.append(f"| {text} | {m['nme_eyes'][key]:.3f} | {m['nme_eyes_median'][key]:.3f} | "
                     f"{m['nme_5pt'][key]:.3f} | {acc} |")
    return "\n".join(lines) + "\n"


GENERATORS = {"shipped-models": shipped_models, "weights": weights, "training-runs": training_runs,
              "settings": settings, "landmarks": landmarks}


def render(name: str) -> str:
    """The markdown of a block: a generator's, or a markdown file's without its ``# title``."""
    if name in GENERATORS:
        return GENERATORS[name]()
    path = ROOT / name
    if path.suffix != ".md" or not path.is_file():
        raise ValueError(f"<!-- table:{name} -->: neither a generated table ({', '.join(GENERATORS)}) "
                         "nor a markdown file of the project")
    return re.sub(r"\A# .*\n+", "", path.read_text())


def splice(text: str) -> str:
    """``text`` with every block's body replaced by its rendering."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def with_training_block(notebook_text: str, loss: str) -> str:
    """A loss notebook's JSON with its parameters cell's ``TRAINING`` entry regenerated."""
    nb = json.loads(notebook_text)
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    src = "".join(cell["source"])
    block = training_block(getattr(loss_class(loss), "training_defaults", {}))
    new, n = re.subn(r"^TRAINING: dict = (?:\{\}[^\n]*|\{\n.*?\n\}[^\n]*)$", lambda _: block, src, count=1,
                     flags=re.M | re.S)
    if n != 1:
        raise ValueError(f"no 'TRAINING: dict = ...' entry in the parameters cell of the {loss} notebook")
    cell["source"] = new.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def stale() -> dict[Path, str]:
    """Every file whose generated parts differ from what it holds -> its up-to-date text."""
    out = {}
    for path in documents():
        text = path.read_text()
        if splice(text) != text:
            out[path] = splice(text)
    for rel, loss in LOSS_NOTEBOOKS.items():
        text = (ROOT / rel).read_text()
        if with_training_block(text, loss) != text:
            out[ROOT / rel] = with_training_block(text, loss)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="list stale files and exit 1 if any, write nothing")
    args = ap.parse_args(argv)
    try:
        todo = stale()
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"render_docs: {e}", file=sys.stderr)
        return 2
    for path, text in todo.items():
        print(f"{'stale' if args.check else 'rewrote'}: {path.relative_to(ROOT)}")
        if not args.check:
            atomic_write_text(path, text)
    return 1 if args.check and todo else 0


if __name__ == "__main__":
    sys.exit(main())
