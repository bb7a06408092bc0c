"""facecore.evaluation.identification's guards of the committed results: a run's scope, the output folder, the
scope written beside the tables; and where each notebook and profile writes them."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import ROOT
from facecore.evaluation.identification import (FULL_PROTOCOL, RESULTS_DIR, check_output_dir, merge_rows, run_scope,
                                                updated_rows, write_results)

EVALUATION_NOTEBOOKS = ["notebooks/id-rate.ipynb", "notebooks/benchmarks.ipynb"]


def test_scope_names_what_makes_a_run_a_subset():
    assert run_scope({**FULL_PROTOCOL, "SEED": 3, "FPRS": [0.1]}) == "full"
    assert run_scope({}) == "full"
    scope = run_scope({"MAX_QUERY_IDENTITIES": 4, "MAX_DISTRACTORS": 0, "MODELS": ["ce-efficientnet"]})
    assert scope.startswith("subset, not the full protocol (MODELS=['ce-efficientnet'], MAX_QUERY_IDENTITIES=4)")
    # rows measured one model at a time are each the full protocol when only those rows are replaced
    assert run_scope({**FULL_PROTOCOL, "MODELS": ["ce-efficientnet"], "UPDATE_ROWS": True}) == "full"
    assert run_scope({"MODELS": ["x"], "UPDATE_ROWS": True, "MAX_DISTRACTORS": 8}).startswith(
        "subset, not the full protocol (MAX_DISTRACTORS=8)")


def test_merge_rows_replaces_in_place_and_keeps_reference_rows_last():
    old = pd.DataFrame({"model": ["a", "b", "ref"], "LFW": [1.0, 2.0, 9.0], "weights": ["ka", "kb", None]})
    new = pd.DataFrame({"model": ["b", "c"], "LFW": [5.0, 6.0], "weights": ["kb2", "kc"]})
    got = merge_rows(old, new, last=("ref",))
    assert got["model"].tolist() == ["a", "b", "c", "ref"]
    assert got["LFW"].tolist() == [1.0, 5.0, 6.0, 9.0] and got["weights"].tolist()[:3] == ["ka", "kb2", "kc"]


def test_updated_rows_refuses_to_mix_scopes(tmp_path):
    full = pd.DataFrame({"model": ["a", "b"], "LFW": [1.0, 2.0]})
    write_results(tmp_path, "benchmark", full, "| model |\n", "T", "full")
    got = updated_rows(tmp_path, "benchmark", pd.DataFrame({"model": ["b"], "LFW": [3.0]}), "full")
    assert got.to_dict("records") == [{"model": "a", "LFW": 1.0}, {"model": "b", "LFW": 3.0}]
    subset = run_scope({"MAX_DISTRACTORS": 8})
    with pytest.raises(ValueError, match=r"benchmark\.csv: its rows were measured as \['full'\].*without UPDATE_ROWS"):
        updated_rows(tmp_path, "benchmark", full, subset)
    fresh = pd.DataFrame({"model": ["z"], "LFW": [0.0]})
    assert updated_rows(tmp_path / "none", "benchmark", fresh, "full") is fresh


def test_committed_benchmark_rows_measured_the_weights_shipped_now():
    """A shipped model's row in id_rate/benchmark.csv names the model_key it measured; new weights without
    a new row (python -m facecore.pipeline --profile full --stages benchmarks, or the notebook with MODELS
    and UPDATE_ROWS) fail here. A recalibration alone keeps the weights and the row."""
    import config
    from facecore.evaluation.embed import model_key
    from facecore.networks.models import load_embedder
    rows = pd.read_csv(RESULTS_DIR / "benchmark.csv").set_index("model")
    for name in config.params:
        measured = rows.loc[name, "weights"]
        now = model_key(load_embedder(config.checkpoint_path(name), "cpu").without_head())
        assert measured == now, f"id_rate/benchmark.csv row {name!r} measured weights {measured}, shipped now: {now}"


def test_a_subset_run_may_not_write_the_committed_results(tmp_path):
    subset = run_scope({"MAX_DISTRACTORS": 8})
    with pytest.raises(ValueError, match="OUTPUT_DIR=.*committed full-protocol results.*a subset"):
        check_output_dir(RESULTS_DIR, subset)
    with pytest.raises(ValueError, match="committed"):
        check_output_dir(RESULTS_DIR / ".." / "id_rate", subset)
    assert check_output_dir(tmp_path, subset) == tmp_path
    assert check_output_dir(RESULTS_DIR, "full") == RESULTS_DIR


def test_written_tables_carry_the_scope(tmp_path):
    table = pd.DataFrame({"model": ["a"], "ROC-AUC": [0.5]})
    write_results(tmp_path / "full", "results", table, "| model |\n", "Title", "full")
    write_results(tmp_path / "small", "results", table, "| model |\n", "Title", run_scope({"MAX_DISTRACTORS": 8}))
    assert (tmp_path / "full" / "results.md").read_text() == "# Title\n\n| model |\n"
    assert pd.read_csv(tmp_path / "full" / "results.csv").protocol.tolist() == ["full"]
    md = (tmp_path / "small" / "results.md").read_text()
    assert md.startswith("# Title\n\n> **Not the full protocol**: subset") and md.endswith("| model |\n")
    assert pd.read_csv(tmp_path / "small" / "results.csv").protocol[0].startswith("subset")
    assert "protocol" not in table  # the caller's table is left as it was


@pytest.mark.parametrize("nb", EVALUATION_NOTEBOOKS)
def test_notebooks_write_under_runs_by_default(nb):
    from facecore.pipeline import notebook_parameters

    assert notebook_parameters(nb)["OUTPUT_DIR"][1].startswith("runs/")


def test_only_full_protocol_stages_write_the_committed_results():
    from facecore.pipeline import list_profiles, load_profile, notebook_parameters

    writers = []
    for profile in list_profiles():
        for stage in load_profile(profile):
            if stage.get("notebook") not in EVALUATION_NOTEBOOKS:
                continue
            params = {k: v for k, (_, v) in notebook_parameters(stage["notebook"]).items()} | stage["parameters"]
            if (ROOT / params["OUTPUT_DIR"]).resolve() == RESULTS_DIR.resolve():
                assert run_scope(params) == "full", (profile, stage["name"])
                writers.append((profile, stage["name"]))
    assert sorted(writers) == [("full", "benchmarks"), ("full", "id-rate")]
