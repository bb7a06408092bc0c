"""tools/render_docs.py: the README's and docs/' generated tables equal what the notebooks' files give,
the loss notebooks' TRAINING entries equal facecore.core.settings; the README stays short and its figures
generated; no diary wording; links and their anchors resolve."""
from __future__ import annotations

import importlib.util
import re

import pytest

from conftest import ROOT
from facecore.core.settings import TRAINING_SETTINGS, training_block


def _render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "tools" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rd = _render_docs()
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_nothing_is_stale():
    """Every generated block and TRAINING entry equals its source (else: python tools/render_docs.py)."""
    assert {str(p.relative_to(ROOT)) for p in rd.stale()} == set()
    assert rd.main(["--check"]) == 0


def test_a_block_is_replaced_by_its_source(tmp_path, monkeypatch):
    monkeypatch.setitem(rd.GENERATORS, "toy", lambda: "| a |\n|---|\n| 1 |\n")
    text = "x\n<!-- table:toy -->\n| a |\n|---|\n| 0 |\n<!-- /table -->\ny\n"
    assert rd.splice(text) == "x\n<!-- table:toy -->\n| a |\n|---|\n| 1 |\n<!-- /table -->\ny\n"
    included = rd.render("id_rate/results.md")
    assert included == (ROOT / "id_rate" / "results.md").read_text().split("\n", 2)[2]  # without its title
    with pytest.raises(ValueError, match="neither a generated table"):
        rd.splice("<!-- table:nope.md -->\n<!-- /table -->")


def test_an_edited_figure_is_stale(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    row = next(line for line in text[text.index("<!-- table:shipped-models -->"):].splitlines() if line.startswith("| `"))
    readme.write_text(text.replace(row, row.replace(" +- ", " +- 1", 1), 1))  # one LFW deviation edited
    monkeypatch.setattr(rd, "documents", lambda: [readme])
    assert list(rd.stale()) == [readme]


def test_the_shipped_models_table_is_their_benchmark_rows_default_first():
    rows, lines = rd._benchmark_rows(), rd.shipped_models().splitlines()[2:]
    params, default = rd._zoo()
    assert len(lines) == len(params) and lines[0].startswith(f"| `{default}` (default) |")
    for line in lines:
        name = line.split("`")[1]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:4] == [rd._cell(rows[name], c) for c in ("LFW", "CFP-FF", "CFP-FP")]
        assert float(cells[-1]) == pytest.approx((ROOT / params[name]).stat().st_size / 1e6, abs=0.05)


def test_training_entry_lists_every_setting_with_the_loss_default():
    block = training_block({"LR": 0.05})
    assert block.startswith("TRAINING: dict = {") and block.splitlines()[-1].startswith("}  # ")
    entries = re.findall(r'^    # "(\w+)": (.+?),  # ', block, re.M)
    assert [n for n, _ in entries] == list(TRAINING_SETTINGS)
    assert dict(entries)["LR"] == "0.05" and dict(entries)["EPOCHS"] == repr(TRAINING_SETTINGS["EPOCHS"].default)
    ns: dict = {}
    exec(block, ns)  # the commented entries leave an empty dict: every default stays in force
    assert ns["TRAINING"] == {}


@pytest.mark.parametrize("nb", sorted(rd.LOSS_NOTEBOOKS))
def test_loss_notebook_parameters_show_every_setting(nb):
    from facecore.pipeline import notebook_parameters

    assert notebook_parameters(nb)["TRAINING"] == ("dict", {})
    text = (ROOT / nb).read_text()
    assert all(f'\\"{name}\\": ' in text for name in TRAINING_SETTINGS)


def test_readme_is_short_and_its_figures_are_generated():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    prose = re.sub(r"<!-- table:.*?<!-- /table -->", "", text, flags=re.S)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    prose = re.sub(r"`[^`]*`", "", prose)
    assert re.findall(r"\d+\.\d+", prose) == []  # a measured figure belongs in a generated table


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_diary_wording(path):
    hits = [ln for ln in path.read_text().splitlines() if re.search(r"session|#1[0-9]| I ", ln, re.I)]
    assert hits == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_resolve(path):
    for target in re.findall(r"\]\(([^)#\s]+)", path.read_text()):
        if not target.startswith("http"):
            assert (path.parent / target).exists(), f"{path.name}: {target}"


def _anchors(path) -> set[str]:
    """GitHub's anchors of a markdown file's headings (lower case, punctuation dropped, spaces to dashes)."""
    heads = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_link_anchors_resolve(path):
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", path.read_text()):
        doc = path.parent / target if target else path
        assert anchor in _anchors(doc), f"{path.name}: {target}#{anchor}"
