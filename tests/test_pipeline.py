"""facecore.pipeline: -p overrides checked against the notebooks' parameters cells; stage numbering."""
import subprocess
import sys

import pytest

from facecore import pipeline
from facecore.core.paths import PROJECT_ROOT


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
    lr = by_name["ce"][1]["TRAINING"]["LR"]  # -p of a shared setting goes into the notebook's TRAINING
    assert lr == 0.001 and isinstance(lr, float)
    assert by_name["ce"][1]["RUN_DIR"] == "2024"  # a str parameter keeps the text
    assert "K_IMAGES" not in by_name["my-face-alignment"][1]


def test_shared_training_settings_go_into_the_notebooks_training_dict():
    """Profiles and -p name the shared settings flat; a notebook taking TRAINING gets them there."""
    stages = [(i, s) for i, s in enumerate(pipeline.load_profile("smoke"), 1) if s["name"] in ("ce", "triplet", "distill")]
    pipeline.apply_overrides(stages, ["EPOCHS=2", "MARGIN=0.3"])
    got = {s["name"]: pipeline.stage_parameters(s) for _, s in stages}
    assert got["ce"]["TRAINING"]["EPOCHS"] == 2 and got["ce"]["TRAINING"]["LR"] == 0.01  # -p and the profile's
    assert "EPOCHS" not in got["ce"] and got["ce"]["RUN_DIR"].endswith("train/ce")  # declared names stay flat
    assert got["triplet"]["MARGIN"] == 0.3 and got["triplet"]["TRAINING"]["MAX_IDENTITIES"] == 10
    assert got["distill"]["EPOCHS"] == 2 and "TRAINING" not in got["distill"]  # distill declares its own
    bad = {"name": "x", "notebook": "notebooks/ce-loss/ce-loss.ipynb", "parameters": {"EPOCHS": "three"}}
    with pytest.raises(ValueError, match="stage x: EPOCHS takes a value of type int"):
        pipeline.stage_parameters(bad)


def test_parameters_cell_is_read_with_types():
    p = pipeline.notebook_parameters("notebooks/id-rate.ipynb")
    assert p["MODELS"] == ("list", [])
    assert pipeline.notebook_parameters("notebooks/ce-loss/ce-loss.ipynb")["TRAINING"] == ("dict", {})
    assert pipeline.accepted_parameters("notebooks/ce-loss/ce-loss.ipynb")["EPOCHS"] == ("int", 30)


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


@pytest.mark.parametrize("nb", sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "notebooks").rglob("*.ipynb")))
def test_papermill_documents_every_parameter(nb):
    """papermill --help-notebook lists each parameter with its comment (an "=" in a comment hides it)."""
    import papermill

    inferred = papermill.inspect_notebook(str(PROJECT_ROOT / nb))
    declared = pipeline.notebook_parameters(nb)
    assert declared and set(inferred) == set(declared)
    assert all(p["help"] for p in inferred.values()), [n for n, p in inferred.items() if not p["help"]]


def _ran(monkeypatch, *argv):
    ran = {}
    monkeypatch.setattr(pipeline, "run_stage", lambda s, profile, i: ran.update({s["name"]: pipeline.stage_parameters(s)}))
    monkeypatch.setattr(pipeline, "missing_data", lambda stages: [])
    return pipeline.main(list(argv)), ran


def test_p_training_dict_wins_over_the_profiles_flat_values(monkeypatch):
    rc, ran = _ran(monkeypatch, "--profile", "smoke", "--stages", "ce", "-p", "TRAINING={EPOCHS: 5, LR: 0.2}")
    assert rc == 0 and ran["ce"]["TRAINING"]["EPOCHS"] == 5 and ran["ce"]["TRAINING"]["LR"] == 0.2
    assert ran["ce"]["TRAINING"]["BATCH_SIZE"] == 32  # the profile's other values stay
    rc, ran = _ran(monkeypatch, "--profile", "smoke", "--stages", "ce", "-p", "TRAINING={LR: 1e-3}")
    assert ran["ce"]["TRAINING"]["LR"] == 0.001  # YAML 1.1 reads 1e-3 as text


@pytest.mark.parametrize("stage, arg, says", [
    ("ce", "LR=nan", "-p LR=nan: LR must be a finite number"), ("ce", "LR=-1", "LR=-1 must be in (0, 10]"),
    ("ce", "EPOCHS=0", "EPOCHS=0 must be in [1, 100000]"), ("ce", "EPOCHS=-3", "EPOCHS=-3"),
    ("ce", "BATCH_SIZE=0", "BATCH_SIZE=0 must be in [2, 65536]"), ("ce", "ARCH=resnet9000", "ARCH='resnet9000' must be one of"),
    ("ce", "TRAINING={EPOCHS: abc}", "EPOCHS takes a value of type int"), ("ce", "CE_SCALE=inf", "CE_SCALE must be a finite"),
    ("distill", "ARCH=resnet9000", "stage distill: ARCH='resnet9000'"), ("distill", "LR=0", "stage distill: LR=0 must be"),
])
def test_values_out_of_range_stop_the_dry_run(monkeypatch, capsys, stage, arg, says):
    rc, ran = _ran(monkeypatch, "--profile", "smoke", "--stages", stage, "-p", arg, "--dry-run")
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_a_malformed_profile_is_exit_2(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("stages: [1, 2]\n")
    assert pipeline.main(["--profile", str(f), "--list"]) == 2
    assert capsys.readouterr().err.startswith(f"profile {f}: stage 1")


def test_a_profile_naming_a_setting_twice_is_refused():
    s = {"name": "x", "notebook": "notebooks/ce-loss/ce-loss.ipynb", "parameters": {"EPOCHS": 1, "TRAINING": {"EPOCHS": 2}}}
    with pytest.raises(ValueError, match="stage x: EPOCHS given both flat and in TRAINING"):
        pipeline.stage_parameters(s)
