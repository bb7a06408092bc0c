"""facecore.evaluation.identification's guards of the committed results: a run's scope, the output folder, the
scope written beside the tables; and where each notebook and profile writes them."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import ROOT
from facecore.evaluation.identification import FULL_PROTOCOL, RESULTS_DIR, check_output_dir, run_scope, write_results

EVALUATION_NOTEBOOKS = ["notebooks/id-rate.ipynb", "notebooks/benchmarks.ipynb"]


def test_scope_names_what_makes_a_run_a_subset():
    assert run_scope({**FULL_PROTOCOL, "SEED": 3, "FPRS": [0.1]}) == "full"
    assert run_scope({}) == "full"
    scope = run_scope({"MAX_QUERY_IDENTITIES": 4, "MAX_DISTRACTORS": 0, "MODELS": ["ce-efficientnet"]})
    assert scope.startswith("subset, not the full protocol (MODELS=['ce-efficientnet'], MAX_QUERY_IDENTITIES=4)")


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
