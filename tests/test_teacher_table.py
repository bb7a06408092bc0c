"""The teacher table: a teacher's embeddings written where it runs, read by ``create_teacher("table")``
where it is not installed."""
import numpy as np
import pytest

from facecore.training.distill import scan_unlabelled, teacher_targets
from facecore.training.teacher_table import main, parse_roots, write_table
from facecore.training.teachers import create_teacher
from test_teachers import toy  # noqa: F401 (the toy teacher, registered for one test)
from test_transport import roots  # noqa: F401 (6 labelled identities and 12 unlabelled crops)


def test_table_teacher_gives_the_teachers_targets_of_the_same_folders(toy, roots, tmp_path):
    info = write_table(roots, tmp_path / "teacher.npz", toy, None, progress=False)
    table = create_teacher("table", path=tmp_path / "teacher.npz")
    n = 0
    for root in roots.values():
        fs = scan_unlabelled(root)
        want = teacher_targets(fs, toy, None, progress=False)
        got = teacher_targets(fs, table, None, progress=False)  # looked up by <folder name>/<path>
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-3  # fp16 in the table
        n += len(fs.paths)
    assert info["crops"] == n and table.meta["embedding_dim"] == 12
    with pytest.raises(ValueError, match="not in the table.*python -m facecore.training.teacher_table"):
        table.lookup(tmp_path / "elsewhere", scan_unlabelled(roots["labelled"]).paths[:1])


def test_folders_are_named_by_their_folder_name_or_explicitly(tmp_path):
    for d in ("a/labelled", "b/unl", "a/x", "b/x"):
        (tmp_path / d).mkdir(parents=True)
    a, b = str(tmp_path / "a" / "labelled"), str(tmp_path / "b" / "unl")
    assert parse_roots([a, f"u={b}"]) == {"labelled": a, "u": b}
    with pytest.raises(ValueError, match="share a name"):
        parse_roots([str(tmp_path / "a" / "x"), str(tmp_path / "b" / "x")])


def test_command_line_writes_the_table_and_names_what_is_wrong(toy, roots, tmp_path, capsys):
    assert main([str(tmp_path / "t.npz"), *map(str, roots.values()), "--teacher", "toy"]) == 0
    assert sorted(create_teacher("table", path=tmp_path / "t.npz")._row)[0].startswith("labelled/")
    capsys.readouterr()
    assert main([str(tmp_path / "t2.npz"), str(tmp_path / "missing"), "--teacher", "toy"]) == 2
    assert main([str(tmp_path / "t2.npz"), f"x={roots['labelled']}", f"x={roots['unlabelled']}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("python -m facecore.training.teacher_table: ") for e in err)
    assert "no folder" in err[0] and "share a name" in err[1] and not (tmp_path / "t2.npz").exists()
