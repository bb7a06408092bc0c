"""realtime.py's names on the demo clip, scored against who each face is.

    .venv/bin/python bench/demo_names.py [--model_name NAME | --checkpoint PT] [--threshold T | --fpr F] [--threads 1]
    .venv/bin/python bench/demo_names.py --report r.json     # score an earlier run's --report_json instead

Runs ``realtime.py`` on ``demo/short_hamilton_clip.mp4`` with its default settings and the demo gallery
(``demo/people_faces``) and reads every frame's faces from its ``--report_json``. Each reported box is
paired (IoU >= 0.3, one to one, per frame) with the hand-labelled boxes of
``bench/experiments/demo_identity_labels.csv``, which say who each face is. A face-frame is one person in
one frame: Lin-Manuel Miranda has 149, the pianist Alex Lacamoire 45 (25 of them his profile close-up,
frames 20-44, the boxes labelled ``profile``), and the four audience members 64 each. Printed, and
written to ``bench/results/demo_names.{md,csv}``: each group's face-frames named right, Unknown, named
as someone else or with no box; wrong names (a name on another person's face or on no labelled face);
and the similarity margins around the threshold.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from facecore.core import zoo_table
from facecore.core.files import write_table
from facecore.core.paths import PROJECT_ROOT as ROOT
from facecore.core.paths import data_root
from facecore.recognition.tracking import match_boxes

IDENTITIES = ROOT / "bench" / "experiments" / "demo_identity_labels.csv"
UNKNOWN, NO_BOX = "Unknown", ""
MIN_IOU = 0.3
Truth = dict[int, list[tuple[np.ndarray, str, str]]]  # frame -> [(box, person, label)]


def read_identities(path: Path = IDENTITIES) -> Truth:
    """frame -> [(box, person, label)] from the identity labels file."""
    out: Truth = {}
    with open(path) as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            box = np.array([float(r[k]) for k in ("x1", "y1", "x2", "y2")])
            out.setdefault(int(r["frame"]), []).append((box, r["person"], r["label"]))
    return out


def pair_frame(faces: list[dict], truth: list[tuple[np.ndarray, str, str]],
               min_iou: float = MIN_IOU) -> dict[int, int]:
    """reported face index -> truth row index, one to one, IoU >= ``min_iou`` (largest total IoU)."""
    a = np.array([f["box"] for f in faces], np.float64).reshape(-1, 4)
    b = np.array([t[0] for t in truth], np.float64).reshape(-1, 4)
    return dict(match_boxes(a, b, min_iou)) if len(a) and len(b) else {}


def outcome(person: str, names: list[str]) -> str:
    """How a person's face-frame was named, from the names of the reported boxes paired with his boxes
    there: ``right``, ``other`` (another gallery name), ``unknown`` or ``no_box``."""
    if person in names:
        return "right"
    if any(n != UNKNOWN for n in names):
        return "other"
    return "unknown" if names else "no_box"


def face_frames(frames: list[dict], truth: Truth, min_iou: float = MIN_IOU) -> tuple[list[dict], list[dict]]:
    """(one row per person and frame: frame, person, profile, outcome, name, similarity; one row per wrong
    name: frame, name, on -- the person whose box it is on, or '' for no labelled face)."""
    rows, wrong = [], []
    for fr in frames:
        i, faces, lab = fr["index"], fr["faces"], truth.get(fr["index"], [])
        pairs = pair_frame(faces, lab, min_iou)
        for k, f in enumerate(faces):
            on = lab[pairs[k]][1] if k in pairs else NO_BOX
            if f["name"] != UNKNOWN and f["name"] != on:
                wrong.append({"frame": i, "name": f["name"], "on": on, "similarity": f["similarity"]})
        for person in dict.fromkeys(p for _, p, _ in lab):
            mine = [faces[k] for k, j in pairs.items() if lab[j][1] == person]
            named = [f for f in mine if f["name"] == person] or [f for f in mine if f["name"] != UNKNOWN] or mine
            sims = [f["similarity"] for f in named if f["similarity"] is not None]
            rows.append({"frame": i, "person": person, "outcome": outcome(person, [f["name"] for f in mine]),
                         "profile": any(p == person and lb == "profile" for _, p, lb in lab),
                         "name": named[0]["name"] if named else NO_BOX, "similarity": max(sims) if sims else None})
    return rows, wrong


def group_row(group: str, rows: list[dict], in_gallery: bool) -> dict:
    """One group's counts: face-frames, boxed, right / unknown / other / no_box, the frames (as runs) and
    those not named right (not in the gallery: named at all), and similarity margins (in the gallery: the
    lowest similarity named and the highest left Unknown; not in it: the highest)."""
    n = {k: sum(r["outcome"] == k for r in rows) for k in ("right", "unknown", "other", "no_box")}

    def sims(*outcomes: str) -> list[float]:
        return [r["similarity"] for r in rows if r["outcome"] in outcomes and r["similarity"] is not None]

    bad = [r["frame"] for r in rows if r["outcome"] != "right"] if in_gallery else \
        [r["frame"] for r in rows if r["outcome"] in ("right", "other")]
    out = {"group": group, "frames": spans([r["frame"] for r in rows]), "face_frames": len(rows),
           "boxed": len(rows) - n["no_box"], "named_right": n["right"] if in_gallery else None,
           "unknown": n["unknown"], "named_as_someone": n["other"] + n["right"], "named_other": n["other"],
           "no_box": n["no_box"], ("not_named_frames" if in_gallery else "named_frames"): spans(bad)}
    if in_gallery:
        out["lowest_similarity_named"] = min(sims("right"), default=None)
        out["highest_similarity_unknown"] = max(sims("unknown"), default=None)
    else:
        out["highest_similarity"] = max(sims("unknown", "other"), default=None)
    return out


def score(rows: list[dict], gallery: list[str]) -> list[dict]:
    """The groups' rows: each gallery person, the profile close-up (face-frames with a ``profile`` box),
    and everyone not in the gallery together (the audience)."""
    gallery = sorted(gallery, key=lambda p: -sum(r["person"] == p for r in rows))  # the most seen first
    out = [group_row(p, [r for r in rows if r["person"] == p], True) for p in gallery]
    for p in gallery:
        close = [r for r in rows if r["person"] == p and r["profile"]]
        if close:
            out.append(group_row(f"{p} (profile close-up)", close, True))
    out.append(group_row("not in the gallery (audience)", [r for r in rows if r["person"] not in gallery], False))
    return out


def fail(message: str) -> None:
    """One line on stderr, exit code 2."""
    print(f"demo_names.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def run_realtime(args: argparse.Namespace, report: Path) -> None:
    """realtime.py on the demo clip with its defaults (and the model / threshold flags given), writing
    ``report``; SystemExit(2) with realtime.py's error line if it fails."""
    cmd = [sys.executable, str(ROOT / "realtime.py"), "--source", str(args.source), "--people_faces",
           str(args.people_faces), "--no-display", "--no-progress", "--report_json", str(report),
           "--threads", str(args.threads)]
    for flag in ("model_name", "checkpoint", "threshold", "fpr", "cache_dir"):
        if getattr(args, flag) is not None:
            cmd += [f"--{flag}", str(getattr(args, flag))]
    cmd += ["--head"] if args.head else []
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        fail(f"realtime.py failed: {last}")
    said = [x for x in r.stdout.splitlines() if x.startswith("source:") or " frames in " in x]
    print("realtime.py: " + "\nrealtime.py: ".join(said), flush=True)  # its model, threshold and frame rate


def load_report(path: Path) -> dict:
    """The report of ``realtime.py --report_json``; SystemExit(2) naming the file if it is not one."""
    try:
        rep = json.loads(Path(path).read_text())
        if not all(k in f for f in rep["frames"] for k in ("index", "faces")):
            raise KeyError("frames")
        return rep
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"--report {path}: not a realtime.py --report_json file with per-frame "
                 f"faces ({type(e).__name__}: {e}); run realtime.py with --report_json on the demo clip")


def spans(frames: list[int]) -> str:
    """Frame numbers as runs: [3, 4, 4, 5, 9] -> '3-5, 9'."""
    runs: list[list[int]] = []
    for f in sorted(set(frames)):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def cell(v) -> str:
    """A table cell: a similarity to 3 decimals ('-' for none), anything else as it is."""
    return fmt(v) if isinstance(v, float) or v is None else str(v)


def table_markdown(groups: list[dict]) -> str:
    """The groups as a markdown table (similarities to 3 decimals, '-' where there is none)."""
    cols = {"frames": "frames", "face_frames": "face-frames", "boxed": "boxed", "named_right": "named right",
            "unknown": "Unknown", "named_other": "another name", "no_box": "no box",
            "lowest_similarity_named": "lowest similarity named",
            "highest_similarity_unknown": "highest similarity Unknown", "highest_similarity": "highest similarity"}
    lines = ["| group | " + " | ".join(cols.values()) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {g['group']} | " + " | ".join(cell(g.get(c)) for c in cols) + " |" for g in groups]
    return "\n".join(lines) + "\n"


def summary_lines(groups: list[dict], wrong: list[dict], threshold: float) -> list[str]:
    """The printed summary, one line per group, then the wrong names."""
    out = []
    for g in groups:
        span = f"frames {g['frames']}, " if "close-up" in g["group"] else ""
        if g["named_right"] is not None:
            missed = f"; not named in frames {g['not_named_frames']}" if g["not_named_frames"] else ""
            out.append(f"{g['group']}: named in {g['named_right']} of {g['face_frames']} face-frames ({span}"
                       f"boxed in {g['boxed']}; Unknown {g['unknown']}, another name {g['named_other']}, no box "
                       f"{g['no_box']}{missed}); lowest similarity named {fmt(g['lowest_similarity_named'])}, "
                       f"highest left Unknown {fmt(g['highest_similarity_unknown'])} (threshold {threshold:.3f})")
        else:
            named = f", in frames {g['named_frames']}" if g["named_frames"] else ""
            out.append(f"{g['group']}: named as anyone in {g['named_as_someone']} of {g['face_frames']} face-frames"
                       f"{named} (boxed in {g['boxed']}); highest similarity {fmt(g['highest_similarity'])} "
                       f"(threshold {threshold:.3f})")
    out.append(f"wrong names (a name on another person's face or on no labelled face): {len(wrong)}" + "".join(
        f"\n  frame {w['frame']}: {w['name']} ({fmt(w['similarity'])}) on "
        f"{w['on'] or 'no labelled face'}" for w in wrong))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    demo = data_root() / "demo"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name", help="a shipped model (realtime.py --model_name; default: the default model)")
    p.add_argument("--checkpoint", help="a facecore checkpoint instead (realtime.py --checkpoint)")
    p.add_argument("--threshold", type=float, help="realtime.py --threshold (default: the checkpoint's at --fpr)")
    p.add_argument("--fpr", type=float, help="realtime.py --fpr (default: realtime.py's, 0.01)")
    p.add_argument("--head", action="store_true", help="realtime.py --head (a distilled student's head)")
    p.add_argument("--threads", type=int, default=1, help="realtime.py --threads (default 1)")
    p.add_argument("--cache_dir", help="realtime.py --cache_dir (default: realtime.py's)")
    p.add_argument("--source", type=Path, default=demo / "short_hamilton_clip.mp4")
    p.add_argument("--people_faces", type=Path, default=demo / "people_faces")
    p.add_argument("--report", type=Path, help="score this realtime.py --report_json instead of running realtime.py")
    p.add_argument("--labels", type=Path, default=IDENTITIES, help="who each face is (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder of demo_names.{md,csv}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for what, path in (("--labels", args.labels),) + ((("--source", args.source), ("--people_faces", args.people_faces))
                                                       if args.report is None else ()):
        if not path.exists():
            fail(f"{what} {path}: not found (set FACECORE_DATA to the shared data folder)")
    if args.report is None:
        with tempfile.TemporaryDirectory() as tmp:
            run_realtime(args, Path(tmp) / "report.json")
            rep = load_report(Path(tmp) / "report.json")
    else:
        rep = load_report(args.report)
    rows, wrong = face_frames(rep["frames"], read_identities(args.labels))
    groups = score(rows, list(rep["people"]))
    lines = summary_lines(groups, wrong, rep["threshold"])
    print("\n".join(lines))
    model = (f"--report {args.report}" if args.report else args.model_name or args.checkpoint or
             f"{zoo_table.DEFAULT_MODEL} (the default model)") + (" --head" if args.head else "")
    source = rep["source"].replace(str(data_root()), "$FACECORE_DATA")
    run = (f"`realtime.py`, {model}, threshold {rep['threshold']:.3f} ({rep['threshold_origin']}), "
           f"on {source}")
    table = pd.DataFrame(groups).convert_dtypes()
    md = (f"{run}; faces paired with `{args.labels.name}` at IoU >= {MIN_IOU}.\n\n"
          f"{table_markdown(groups)}\n" + "\n".join(f"- {x}" for x in lines) + "\n")
    write_table(args.out, "demo_names", table, md, "realtime.py's names on the demo clip")
    print(f"wrote {args.out / 'demo_names.md'} and demo_names.csv")


if __name__ == "__main__":
    main()
