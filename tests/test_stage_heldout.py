"""tools/stage_celeba_heldout.py: only the held-out identities are written, atomically, from a git
repository laid out as CelebA_Samples (a small one made here) and a celeba-crops folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))  # the tools are scripts, not part of the package
from stage_celeba_heldout import main  # noqa: E402

SAMPLES = {"7201_000001.jpg": b"a1", "7201_000002.jpg": b"a2", "7202_000003.jpg": b"b3", "10_000004.jpg": b"t4",
           "11_000005.jpg": b"t5"}


@pytest.fixture
def repo(tmp_path) -> tuple[Path, str]:
    """(bare git directory, commit) holding ``celeba_identity_samples/`` with SAMPLES."""
    work, bare = tmp_path / "work", tmp_path / "bare.git"
    (work / "celeba_identity_samples").mkdir(parents=True)
    for name, data in SAMPLES.items():
        (work / "celeba_identity_samples" / name).write_bytes(data)
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "."], [*env, "commit", "-q", "-m", "samples"]):
        subprocess.run(["git", "-C", str(work), *cmd], check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    return bare, commit


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    """(ids file listing 7201, 7202 and 7299; celeba-crops with a held-out and a training identity)."""
    ids = tmp_path / "ids.txt"
    ids.write_text("7201\n7202\n7299\n")
    crops = tmp_path / "crops"
    for rel, data in {"7201/000001.jpg": b"same", "7201/000009.jpg": b"a9", "7299/000010.jpg": b"c10",
                      "10/000011.jpg": b"t11"}.items():
        (crops / rel).parent.mkdir(parents=True, exist_ok=True)
        (crops / rel).write_bytes(data)
    return ids, crops


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_only_the_held_out_identities(repo, inputs, tmp_path, capsys):
    (bare, commit), (ids, crops) = repo, inputs
    out = tmp_path / "heldout"
    (tmp_path / "heldout.partial").mkdir()  # a killed run's leftover is replaced
    assert main([str(bare), str(out), "--crops", str(crops), "--ids", str(ids), "--commit", commit]) == 0
    assert _tree(out) == {"7201/000001.jpg": b"a1", "7201/000002.jpg": b"a2", "7201/000009.jpg": b"a9",
                          "7202/000003.jpg": b"b3", "7299/000010.jpg": b"c10"}
    assert not (tmp_path / "heldout.partial").exists()
    assert "5 photos of 3 held-out identities" in capsys.readouterr().out


def test_an_existing_output_is_left_alone(repo, inputs, tmp_path, capsys):
    (bare, commit), (ids, _) = repo, inputs
    out = tmp_path / "heldout"
    (out / "x").mkdir(parents=True)
    assert main([str(bare), str(out), "--ids", str(ids), "--commit", commit]) == 0
    assert _tree(out) == {} and "left alone" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["git_dir", "commit", "crops", "ids"])
def test_bad_input_is_one_line_and_exit_2(repo, inputs, tmp_path, capsys, case):
    (bare, commit), (ids, crops) = repo, inputs
    args = {"git_dir": str(bare), "--crops": str(crops), "--ids": str(ids), "--commit": commit}
    args.update({"git_dir": {"git_dir": str(tmp_path / "nope")}, "commit": {"--commit": "0" * 40},
                 "crops": {"--crops": str(tmp_path / "nope")}, "ids": {"--ids": str(tmp_path / "nope.txt")}}[case])
    argv = [args.pop("git_dir"), str(tmp_path / "out")] + [x for kv in args.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stage_celeba_heldout: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
