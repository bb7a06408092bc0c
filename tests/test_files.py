"""The one output rule of every writer (facecore.core.files.output_target): a symlink is written through to
its target, a folder, device node, FIFO or socket is refused; writers get it without doing anything."""
from __future__ import annotations

import os
import socket
import stat

import numpy as np
import pytest

from facecore.core.files import (OutputPathError, atomic_output, atomic_write_bytes, atomic_write_text, output_target,
                                 update_text)


def _kind(path) -> str:
    m = os.lstat(path).st_mode
    return "link" if stat.S_ISLNK(m) else "fifo" if stat.S_ISFIFO(m) else "sock" if stat.S_ISSOCK(m) else \
        "dir" if stat.S_ISDIR(m) else "file" if stat.S_ISREG(m) else "other"


@pytest.fixture
def specials(tmp_path):
    """A FIFO, a socket, a link to /dev/null, a folder and a symlink loop, in ``tmp_path``."""
    os.mkfifo(tmp_path / "fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    (tmp_path / "null").symlink_to("/dev/null")
    (tmp_path / "folder").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    yield {"fifo": "FIFO", "sock": "socket", "null": "character device", "folder": "folder", "loop": "symlink loop"}
    s.close()


def test_special_files_are_refused_and_left_as_they_were(tmp_path, specials):
    before = {name: _kind(tmp_path / name) for name in specials}
    for name, kind in specials.items():
        with pytest.raises(OutputPathError, match=f"--out {tmp_path / name}.*{kind}"):
            output_target(tmp_path / name, "--out")
        for write in (lambda p: atomic_write_bytes(p, b"x"), lambda p: atomic_write_text(p, "x"),
                      lambda p: update_text(p, "x")):
            with pytest.raises(ValueError, match=kind):  # OutputPathError is a ValueError: the CLIs' exit 2
                write(tmp_path / name)
    assert {name: _kind(tmp_path / name) for name in specials} == before
    assert os.readlink(tmp_path / "null") == "/dev/null"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(specials)  # no temporary file left
    with pytest.raises(OutputPathError, match="character device"):
        output_target("/dev/null")


def test_a_symlink_is_written_through_and_kept(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert output_target(link) == target
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640  # as open() would keep it
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "later.txt")
    atomic_write_bytes(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.txt").read_bytes() == b"made"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.json", "later.txt"]


def test_atomic_output_removes_its_temporary_file_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "a.png", suffix=".png") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(tmp_path / "a.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"whole")
    assert (tmp_path / "a.png").read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1


def test_update_text_leaves_an_unchanged_file_alone(tmp_path):
    p = tmp_path / "m.csv"
    assert update_text(p, "a\n") is True
    ino = p.stat().st_ino
    assert update_text(p, "a\n") is False and p.stat().st_ino == ino
    assert update_text(p, "b\n") is True and p.read_text() == "b\n"


def test_writers_get_the_rule_for_free(tmp_path, specials):
    """A checkpoint, a table, realtime's report check and the GIF writer: none replaces a special file."""
    import pandas as pd

    from facecore.core.checkpoint import write_checkpoint
    from facecore.core.files import write_table
    from facecore.recognition.video import check_output_path, check_writable
    from facecore.recognition.video_out import OutputWriter

    with pytest.raises(ValueError, match="FIFO"):
        write_checkpoint(tmp_path / "fifo", {"meta": {}, "state_dict": {}})
    os.mkfifo(tmp_path / "t.csv")
    with pytest.raises(ValueError, match="FIFO"):
        write_table(tmp_path, "t", pd.DataFrame({"a": [1]}), "| a |", "T")
    with pytest.raises(ValueError, match="--report_json .*character device"):
        check_writable(tmp_path / "null", "--report_json")
    (tmp_path / "o.gif").symlink_to(tmp_path / "fifo")
    with pytest.raises(ValueError, match="output_path .*FIFO"):
        check_output_path(tmp_path / "o.gif")
    with pytest.raises(ValueError, match="FIFO"):
        OutputWriter(tmp_path / "o.gif", 10.0)
    (tmp_path / "real.gif").write_bytes(b"old")
    (tmp_path / "l.gif").symlink_to(tmp_path / "real.gif")
    w = OutputWriter(tmp_path / "l.gif", 10.0)
    w.write(np.zeros((8, 8, 3), np.uint8))
    w.close()
    assert (tmp_path / "l.gif").is_symlink() and (tmp_path / "real.gif").read_bytes()[:3] == b"GIF"
    assert _kind(tmp_path / "fifo") == "fifo" and _kind(tmp_path / "t.csv") == "fifo"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
