"""bench/ablation.py on fake checkpoints whose evaluation returns fixed fold accuracies and pair similarities."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("ablation", ROOT / "bench" / "ablation.py")
ablation = importlib.util.module_from_spec(spec)
sys.modules.setdefault("ablation", ablation)  # dataclasses look their module up
spec.loader.exec_module(ablation)

BASE_LFW = np.array([0.95, 0.96, 0.97, 0.94, 0.95, 0.96, 0.97, 0.98, 0.95, 0.96])
LEVER_LFW = BASE_LFW + np.array([0.01, 0.0, -0.01, 0.02, 0.01, 0.01, 0.0, -0.01, 0.03, 0.01])
# 8 positive pairs of 3 identities; base accepts above 0.5, lever above 0.6
BASE_POS = np.array([0.7, 0.55, 0.4, 0.9, 0.52, np.nan, 0.3, 0.8], np.float32)
LEVER_POS = np.array([0.8, 0.65, 0.7, 0.5, 0.61, 0.9, 0.2, 0.59], np.float32)
GROUPS = np.array([0, 0, 0, 1, 1, 1, 2, 2])


def record(lfw: np.ndarray, pos: np.ndarray, thr: float) -> dict:
    return {"lfw": lfw, "cfp-ff": lfw - 0.01, "cfp-fp": lfw - 0.1, "fprs": np.array([1e-3, 1e-2]),
            "tprs": np.array([np.mean(pos[np.isfinite(pos)] > thr), 0.9]), "thresholds": np.array([thr, thr - 0.1]),
            "pos_sim": pos, "pos_group": GROUPS}


RECORDS = {"base.pt": record(BASE_LFW, BASE_POS, 0.5), "lever.pt": record(LEVER_LFW, LEVER_POS, 0.6)}


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    (tmp_path / "base.pt").write_bytes(b"base weights")
    (tmp_path / "lever.pt").write_bytes(b"lever weights")
    monkeypatch.setenv("FACECORE_WORK", str(tmp_path))
    rows = tmp_path / "rows.yaml"
    rows.write_text(f"""rows:
  - {{label: base, model: "{tmp_path / 'base.pt'}", lever: baseline}}
  - {{label: "lever, with comma", model: "${{WORK}}/lever.pt", vs: base, lever: "X 1 -> 2", note: "helps?"}}
  - {{label: planned, model: "${{WORK}}/runs/missing/best.pt", vs: "lever, with comma", lever: Y}}
""")
    calls = []
    monkeypatch.setattr(ablation, "evaluate_checkpoint", lambda path, *a, **k: calls.append(path.name) or RECORDS[path.name])
    monkeypatch.setattr(ablation, "set_threads", lambda n: 1)
    args = ["--file", str(rows), "--out", str(tmp_path / "out"), "--results_cache", str(tmp_path / "kept"), "--no_progress"]
    return tmp_path, args, calls


def test_deltas_match_a_hand_computation(setup, capsys):
    tmp_path, args, calls = setup
    ablation.main(args)
    assert sorted(calls) == ["base.pt", "lever.pt"]
    out = capsys.readouterr().out
    assert f"not run: planned: {tmp_path / 'runs/missing/best.pt'} (no such file)" in out
    t = pd.read_csv(tmp_path / "out" / "ablation.csv").set_index("row")
    d = LEVER_LFW - BASE_LFW
    assert t.loc["lever, with comma", "ΔLFW"] == pytest.approx(100 * d.mean())
    assert t.loc["lever, with comma", "ΔLFW se"] == pytest.approx(100 * d.std(ddof=1) / np.sqrt(10))
    assert t.loc["lever, with comma", "ΔLFW better"] == "6/10"
    assert t.loc["lever, with comma", "ΔCFP-FP"] == pytest.approx(100 * d.mean())
    assert t.loc["base", "LFW"] == pytest.approx(100 * BASE_LFW.mean())
    # pairs both embedded (not the 6th): base accepts 0,1,3,4,7; lever 0,1,2,4 -> +1 (pair 2), -2 (pairs 3, 7)
    assert t.loc["lever, with comma", "ΔTPR@0.001"] == pytest.approx(100 * (4 - 5) / 7)
    assert (t.loc["lever, with comma", "TPR@0.001 gained"], t.loc["lever, with comma", "TPR@0.001 lost"]) == (1, 2)
    assert t.loc["lever, with comma", "TPR@0.001"] == pytest.approx(100 * 5 / 8)
    assert t.loc["planned", "status"] == "not run" and np.isnan(t.loc["planned", "LFW"])
    assert np.isnan(t.loc["planned", "ΔLFW"]) and np.isnan(t.loc["base", "ΔLFW"])
    md = (tmp_path / "out" / "ablation.md").read_text()
    sign = "+" if d.mean() > 0 else ""
    assert f"| {sign}{100 * d.mean():.2f} +- {100 * d.std(ddof=1) / np.sqrt(10):.2f} (6/10) |" in md
    assert "| -14.29 +- " in md and "(+1/-2)" in md
    assert md.count("\n| planned | Y | lever, with comma |" + "  |" * 9 + " not run |") == 1


def test_rerun_reads_kept_results_and_rows_selects(setup):
    tmp_path, args, calls = setup
    ablation.main(args + ["--rows", "1"])  # the baseline only
    assert calls == ["base.pt"]
    t = pd.read_csv(tmp_path / "out" / "ablation.csv").set_index("row")
    assert t.loc["lever, with comma", "status"].startswith("not evaluated") and np.isnan(t.loc["lever, with comma", "LFW"])
    ablation.main(args + ["--rows", "lever, with comma"])  # measures it and (kept) its vs row
    assert calls == ["base.pt", "lever.pt"]
    ablation.main(args)  # everything kept: nothing evaluated again
    assert calls == ["base.pt", "lever.pt"]
    t = pd.read_csv(tmp_path / "out" / "ablation.csv").set_index("row")
    assert t.loc["lever, with comma", "ΔLFW better"] == "6/10"


@pytest.mark.parametrize("text, message", [
    ("rows: [{label: a, model: x}, {label: a, model: y}]", "label 'a' appears 2 times"),
    ("rows: [{label: a, model: x, vs: b}]", "has vs 'b'"),
    ("rows: [{label: a}]", "needs 'label' and 'model'"),
    ("rows: [{label: a, model: x, colour: red}]", "unknown: colour"),
    ("[1, 2]", "top-level 'rows:'"),
    ("rows: [{label: a, model: '${DATA}/x.pt'}]", "only ${WORK}"),
])
def test_bad_rows_exit_2_with_one_line(tmp_path, capsys, text, message):
    f = tmp_path / "rows.yaml"
    f.write_text(text)
    with pytest.raises(SystemExit) as e:
        ablation.main(["--file", str(f), "--out", str(tmp_path), "--results_cache", str(tmp_path / "kept")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unknown_rows_choice_lists_the_rows(tmp_path):
    rows = [ablation.Row("a, b", "x"), ablation.Row("c", "y", vs="a, b")]
    assert ablation.select_rows(rows, "c") == {"a, b", "c"}
    assert ablation.select_rows(rows, "a, b") == {"a, b"}
    with pytest.raises(ablation.RowsError, match="no row 'd'; rows: 1 a, b; 2 c"):
        ablation.select_rows(rows, "d")


def test_seeded_rows_file_is_valid():
    rows = ablation.read_rows(ROOT / "bench" / "ablation.yaml")
    assert rows[0].model == "${WORK}/init/distill-dlib-inceptionresnetv1.pt" and not rows[0].vs  # the dlib-taught start
    assert all(r.model.startswith("${WORK}/runs/distill-0095-") for r in rows[1:])
