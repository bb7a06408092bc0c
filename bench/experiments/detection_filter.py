"""Which detections on the demo clip are faces: MTCNN's boxes vs hand labels, under candidate filters.

    .venv/bin/python bench/experiments/detection_filter.py [--sheet runs/bench/detections.png]

Every frame of ``demo/short_hamilton_clip.mp4`` goes through realtime.py's detector (MTCNN, default
thresholds, 640 px, faces from 20 px), with no filter. Each detection is paired (IoU >= 0.5, same
frame) with a row of ``bench/experiments/demo_detection_labels.csv``, hand labels made by looking at every
box's crop: ``face``, ``profile`` (the pianist Alex Lacamoire's profile close-up, boxed over cheek and ear)
or ``not_face`` (hair, hands, a jaw, dark background). Printed: for each rule, how many detections
of each label it keeps. ``--sheet`` writes a contact sheet of every crop with its index and score,
to label a changed detector again.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from facecore.core.paths import data_root

LABELS = Path(__file__).with_name("demo_detection_labels.csv")


def read_labels(path: Path = LABELS) -> dict[int, list[tuple[np.ndarray, str]]]:
    """frame -> [(box, label)] from the labels file."""
    out: dict[int, list[tuple[np.ndarray, str]]] = {}
    with open(path) as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            box = np.array([float(r[k]) for k in ("x1", "y1", "x2", "y2")])
            out.setdefault(int(r["frame"]), []).append((box, r["label"]))
    return out


def yaw(lm: np.ndarray) -> float:
    """Yaw proxy from the 5 landmarks: the nose's offset from the eyes' midpoint along the eye line, in
    eye distances."""
    le, re, nose = lm[0], lm[1], lm[2]
    ed = max(float(np.linalg.norm(re - le)), 1e-9)
    return float(np.dot(nose - (le + re) / 2, (re - le) / ed) / ed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sheet", help="write a contact sheet of every detection's crop to this PNG")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import cv2

    from facecore.detection.detect import plausible_faces
    from facecore.detection.detectors import create_detector
    from facecore.core.runtime import set_threads
    from facecore.recognition.tracking import match_boxes
    from facecore.recognition.video import open_source

    set_threads(args.threads)
    det = create_detector("mtcnn", min_face_size=20.0, max_side=640, pad_frac=0.0)  # realtime.py's detector
    labels = read_labels()
    rows, crops = [], []
    src = open_source(str(data_root() / "demo" / "short_hamilton_clip.mp4"))
    for i, frame in enumerate(src):
        d = det.detect([frame])[0]
        lab = labels.get(i, [])
        pairs = dict(match_boxes(d.boxes.astype(np.float64), np.array([b for b, _ in lab]).reshape(-1, 4), 0.5))
        for k in range(len(d)):
            rows.append({"frame": i, "k": k, "box": d.boxes[k], "score": float(d.scores[k]), "lm": d.landmarks[k],
                         "label": lab[pairs[k]][1] if k in pairs else "unlabelled", "n": len(d),
                         "all_boxes": d.boxes, "all_scores": d.scores})
            x1, y1, x2, y2 = (int(round(v)) for v in d.boxes[k])
            c = frame[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
            crops.append(cv2.resize(c, (72, 72)) if c.size else np.zeros((72, 72, 3), np.uint8))
    src.close()

    def plausible(r, **kw) -> bool:
        return r["k"] in plausible_faces(r["all_boxes"], r["all_scores"], **kw)

    rules = {
        "none (MTCNN's 0.7)": lambda r: True,
        "score >= 0.9": lambda r: r["score"] >= 0.9,
        "score >= 0.95": lambda r: r["score"] >= 0.95,
        "side >= 0.5 x frame's largest": lambda r: plausible(r, min_score=0.0, min_rel_side=0.5),
        "abs(yaw) <= 0.6 (nose near the eye midpoint)": lambda r: abs(yaw(r["lm"])) <= 0.6,
        "score >= 0.9 and side >= 0.5 x largest (default)": lambda r: plausible(r),
    }
    kinds = ["face", "profile", "not_face", "unlabelled"]
    print(f"{len(rows)} detections in the clip: " + ", ".join(f"{sum(r['label'] == k for r in rows)} {k}" for k in kinds))
    print(f"\n| rule | {' | '.join(kinds)} kept |\n|---|{'---|' * len(kinds)}")
    for name, rule in rules.items():
        kept = [sum(rule(r) for r in rows if r["label"] == k) for k in kinds]
        print(f"| {name} | " + " | ".join(f"{n}/{sum(r['label'] == k for r in rows)}" for n, k in zip(kept, kinds)) + " |")
    if args.sheet:
        write_sheet(args.sheet, crops, rows)


def write_sheet(path: str, crops: list[np.ndarray], rows: list[dict], cols: int = 20) -> None:
    """Every crop with its index and score, ``cols`` per row."""
    import cv2

    t = crops[0].shape[0]
    sheet = np.full((-(-len(crops) // cols) * (t + 14), cols * t, 3), 255, np.uint8)
    for i, (c, r) in enumerate(zip(crops, rows)):
        y, x = (i // cols) * (t + 14), (i % cols) * t
        sheet[y:y + t, x:x + t] = c
        cv2.putText(sheet, f"{i} {r['score']:.2f}", (x + 1, y + t + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"contact sheet: {path}")


if __name__ == "__main__":
    main()
