"""facecore.pipeline: -p overrides checked against the notebooks' parameters cells; stage numbering."""
import subprocess
import sys

import pytest

from facecore import pipeline
from facecore.paths import PROJECT_ROOT


@pytest.mark.parametrize("arg, says", [("=5", "NAME=VALUE"), ("EPOCHS=abc", "EPOCHS is declared int"),
                                       ("X=[", "valid: ARCH"), ("EPOCHS=[", "not a valid YAML value"),
                                       ("CPU_BF16=1", "declared bool"), ("EPOCHS", "NAME=VALUE")])
def test_bad_params_are_one_line_errors(arg, says):
    r = subprocess.run([sys.executable, "-m", "facecore.pipeline", "--profile", "smoke", "--stages", "ce", "-p", arg,
                        "--dry-run"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert says in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_override_goes_only_to_stages_declaring_it(monkeypatch):
    ran = []
    monkeypatch.setattr(pipeline, "run_stage", lambda s, profile, i: ran.append((i, s["name"], dict(s["parameters"]))))
    monkeypatch.setattr(pipeline, "missing_data", lambda stages: [])
    assert pipeline.main(["--profile", "smoke", "--stages", "triplet,ce,my-face-alignment",
                          "-p", "K_IMAGES=3", "-p", "LR=1e-3", "-p", "RUN_DIR=2024"]) == 0
    by_name = {name: (i, p) for i, name, p in ran}
    assert by_name["ce"][0] == 3 and by_name["triplet"][0] == 4 and by_name["my-face-alignment"][0] == 5
    assert by_name["triplet"][1]["K_IMAGES"] == 3 and "K_IMAGES" not in by_name["ce"][1]
    assert by_name["ce"][1]["LR"] == 0.001 and isinstance(by_name["ce"][1]["LR"], float)
    assert by_name["ce"][1]["RUN_DIR"] == "2024"  # a str parameter keeps the text
    assert "K_IMAGES" not in by_name["my-face-alignment"][1]


def test_parameters_cell_is_read_with_types():
    p = pipeline.notebook_parameters("notebooks/id-rate.ipynb")
    assert p["MODELS"] == ("list", [])
    assert pipeline.notebook_parameters("notebooks/ce-loss/ce-loss.ipynb")["EPOCHS"][0] == "int"


def test_missing_data_admits_what_an_earlier_stage_trains(monkeypatch, tmp_path):
    """A fine-tune stage may require the run folder of a stage listed before it, not of one after it."""
    monkeypatch.setenv("FACECORE_DATA", str(tmp_path))
    (tmp_path / "lfw").mkdir()
    first = {"name": "ce", "requires": ["lfw"], "parameters": {"RUN_DIR": str(tmp_path / "runs" / "ce")}}
    ft = {"name": "ft", "requires": ["lfw", str(tmp_path / "runs" / "ce" / "last.pt")], "parameters": {}}
    assert pipeline.missing_data([first, ft]) == []
    align = {"name": "align", "requires": [], "parameters": {"DESTINATION": str(tmp_path / "aligned" / "a")}}
    use = {"name": "use", "requires": [str(tmp_path / "aligned")], "parameters": {}}
    assert pipeline.missing_data([align, use]) == []
    missing = pipeline.missing_data([ft, first])
    assert len(missing) == 1 and "last.pt" in missing[0] and "stage ft" in missing[0]
