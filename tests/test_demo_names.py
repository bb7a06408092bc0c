"""bench/demo_names.py: pairing realtime.py's faces with who each face is, and the scores, on synthetic frames."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("demo_names", ROOT / "bench" / "demo_names.py")
dn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dn)

GALLERY = ["Ann", "Bob"]


def face(box, name: str, sim: float | None = 0.5) -> dict:
    return {"box": [float(v) for v in box], "name": name, "similarity": sim}


def synthetic(seed: int, n_frames: int = 40):
    """Random frames: people on a grid (never overlapping), some with a second box, reported boxes
    jittered from theirs with random names, some missing, and stray named boxes. Returns the frames, the
    truth, and for every reported face the person whose box it came from ('' for a stray one)."""
    rng = np.random.default_rng(seed)
    people = GALLERY + ["x1", "x2"]
    frames, truth, source = [], {}, []
    for i in range(n_frames):
        lab, faces, src = [], [], []
        for k, p in enumerate(people):
            if rng.random() < 0.3:
                continue
            x, y = 100.0 * k, 0.0
            boxes = [np.array([x, y, x + 40, y + 40])]
            if rng.random() < 0.2:  # a second box on the same face (the demo's frame 183)
                boxes.append(np.array([x, y + 45, x + 40, y + 85]))
            label = "profile" if p == "Bob" and i % 2 else "face"
            lab += [(b, p, label) for b in boxes]
            for b in boxes:
                if rng.random() < 0.25:
                    continue  # no box reported on it
                name = rng.choice(GALLERY + ["Unknown"] * 2)
                faces.append(face(b + rng.uniform(-3, 3, 4), str(name), float(rng.uniform(-1, 1))))
                src.append(p)
        if rng.random() < 0.3:
            faces.append(face([500, 300, 540, 340], str(rng.choice(GALLERY + ["Unknown"]))))
            src.append("")
        if lab:
            truth[i] = lab
        frames.append({"index": i, "faces": faces})
        source.append(src)
    return frames, truth, source


def brute_force(frames, truth, source):
    """Outcome per (frame, person) and wrong names, from where each reported face came from (no IoU)."""
    outcomes, wrong = {}, 0
    for fr, src in zip(frames, source):
        for f, p in zip(fr["faces"], src):
            wrong += f["name"] != "Unknown" and f["name"] != p
        for p in {p for _, p, _ in truth.get(fr["index"], [])}:
            names = [f["name"] for f, q in zip(fr["faces"], src) if q == p]
            outcomes[fr["index"], p] = ("right" if p in names else "other" if set(names) - {"Unknown"}
                                        else "unknown" if names else "no_box")
    return outcomes, wrong


@pytest.mark.parametrize("seed", range(5))
def test_face_frames_match_a_brute_force_pairing(seed):
    frames, truth, source = synthetic(seed)
    rows, wrong = dn.face_frames(frames, truth)
    expected, n_wrong = brute_force(frames, truth, source)
    assert {(r["frame"], r["person"]): r["outcome"] for r in rows} == expected
    assert len(rows) == len(expected) and len(wrong) == n_wrong
    groups = {g["group"]: g for g in dn.score(rows, GALLERY)}
    for p in GALLERY:
        c = Counter(o for (_, q), o in expected.items() if q == p)
        g = groups[p]
        assert (g["face_frames"], g["named_right"], g["unknown"], g["named_other"], g["no_box"]) == \
            (sum(c.values()), c["right"], c["unknown"], c["other"], c["no_box"])
    close = {f for f, lab in truth.items() if any(p == "Bob" and lb == "profile" for _, p, lb in lab)}
    assert groups["Bob (profile close-up)"]["face_frames"] == len(close)
    assert groups["Bob (profile close-up)"]["named_right"] == sum(expected[f, "Bob"] == "right" for f in close)
    others = Counter(o for (_, q), o in expected.items() if q not in GALLERY)
    aud = groups["not in the gallery (audience)"]
    assert (aud["face_frames"], aud["named_as_someone"], aud["unknown"]) == \
        (sum(others.values()), others["other"], others["unknown"])


def test_scores_and_margins_on_known_frames():
    ann, ann_eyes, bob, x = [0, 0, 40, 40], [0, 45, 40, 85], [100, 0, 140, 40], [200, 0, 240, 40]
    truth = {0: [(np.array(ann, float), "Ann", "face"), (np.array(ann_eyes, float), "Ann", "face"),
                 (np.array(bob, float), "Bob", "profile"), (np.array(x, float), "x1", "face")],
             1: [(np.array(ann, float), "Ann", "face"), (np.array(x, float), "x1", "face")],
             2: [(np.array(ann, float), "Ann", "face"), (np.array(bob, float), "Bob", "face")]}
    frames = [
        # frame 0: Ann named on her eyes' box only (right), Bob Unknown, x1 named Bob (wrong), a stray Ann
        {"index": 0, "faces": [face(ann, "Unknown", 0.30), face(ann_eyes, "Ann", 0.41), face(bob, "Unknown", 0.2),
                               face(x, "Bob", 0.45), face([300, 300, 340, 340], "Ann", 0.6)]},
        # frame 1: Ann Unknown, x1 Unknown with no similarity yet
        {"index": 1, "faces": [face([2, 1, 41, 40], "Unknown", 0.38), face(x, "Unknown", None)]},
        # frame 2: Ann named Bob (wrong), Bob has no box (a box at IoU < 0.3 is not his)
        {"index": 2, "faces": [face(ann, "Bob", 0.5), face([128, 28, 168, 68], "Unknown", 0.1)]},
    ]
    rows, wrong = dn.face_frames(frames, truth)
    assert [(r["frame"], r["person"], r["outcome"]) for r in rows] == [
        (0, "Ann", "right"), (0, "Bob", "unknown"), (0, "x1", "other"), (1, "Ann", "unknown"), (1, "x1", "unknown"),
        (2, "Ann", "other"), (2, "Bob", "no_box")]
    assert [(w["frame"], w["name"], w["on"]) for w in wrong] == [(0, "Bob", "x1"), (0, "Ann", ""), (2, "Bob", "Ann")]
    g = {r["group"]: r for r in dn.score(rows, GALLERY)}
    assert g["Ann"] == {"group": "Ann", "frames": "0-2", "face_frames": 3, "boxed": 3, "named_right": 1,
                             "unknown": 1, "named_as_someone": 2, "named_other": 1, "no_box": 0,
                             "not_named_frames": "1-2", "lowest_similarity_named": 0.41,
                             "highest_similarity_unknown": 0.38}
    assert (g["Bob (profile close-up)"]["face_frames"], g["Bob (profile close-up)"]["frames"]) == (1, "0")
    aud = g["not in the gallery (audience)"]
    assert (aud["named_as_someone"], aud["named_frames"], aud["highest_similarity"]) == (1, "0", 0.45)
    assert [x["group"] for x in dn.score(rows, GALLERY)][:2] == ["Ann", "Bob"]  # the most seen first


def test_spans():
    assert dn.spans([9, 3, 4, 4, 5, 11, 12]) == "3-5, 9, 11-12" and dn.spans([]) == ""


def test_identity_labels_cover_every_labelled_face_of_the_clip():
    """Every face or profile box of the detection labels has its person; Lin-Manuel Miranda is in 149
    frames, Alex Lacamoire in 45 (his profile close-up: frames 20-44), each of 4 audience members in 64."""
    truth = dn.read_identities()
    with open(ROOT / "bench" / "experiments" / "demo_detection_labels.csv") as f:
        det = [r for r in csv.DictReader(x for x in f if not x.startswith("#")) if r["label"] != "not_face"]
    ours = {(f, tuple(np.round(b, 1)), lb) for f, lab in truth.items() for b, _, lb in lab}
    assert {(int(r["frame"]), tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2")), r["label"]) for r in det} <= ours
    assert len(ours) == len(det) + 1  # frame 44: frame 43's box, drawn (MTCNN finds nothing there)
    frames = Counter(p for lab in truth.values() for p in {p for _, p, _ in lab})
    assert frames == {"Lin_Manuel_Miranda": 149, "Alex_Lacamoire": 45, **{f"audience_{k}": 64 for k in range(1, 5)}}
    close = sorted(f for f, lab in truth.items() if any(lb == "profile" for _, _, lb in lab))
    assert close == list(range(20, 45))


def test_report_scored_and_tables_written(tmp_path, capsys):
    box = [float(v) for v in dn.read_identities()[100][0][0]]
    rep = {"source": "video x.mp4", "people": ["Alex_Lacamoire", "Lin_Manuel_Miranda"], "threshold": 0.39,
           "threshold_origin": "--threshold",
           "frames": [{"index": 100, "faces": [face(box, "Lin_Manuel_Miranda", 0.44)]}, {"index": 101, "faces": []}]}
    (tmp_path / "r.json").write_text(json.dumps(rep))
    dn.main(["--report", str(tmp_path / "r.json"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "Lin_Manuel_Miranda: named in 1 of 2 face-frames" in out and "no box 1" in out
    with open(tmp_path / "out" / "demo_names.csv") as f:
        rows = {r["group"]: r for r in csv.DictReader(f)}
    lin = rows["Lin_Manuel_Miranda"]
    assert (lin["named_right"], lin["lowest_similarity_named"]) == ("1", "0.44")
    assert "| Lin_Manuel_Miranda | 100-101 | 2 | 1 | 1 |" in (tmp_path / "out" / "demo_names.md").read_text()


def test_bad_report_is_one_line_exit_2(tmp_path):
    (tmp_path / "r.json").write_text("{not json")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "demo_names.py"), "--report", str(tmp_path / "r.json"),
                        "--out", str(tmp_path / "out")], check=False, capture_output=True, text=True, cwd=ROOT)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "r.json" in lines[0] and "--report_json" in lines[0], r.stderr
    assert not (tmp_path / "out").exists()
