"""One alignment at a time per destination: a held lock refuses a second run, a lock whose owner has
ended is taken over. The owners are processes held at a known point (they wait on their stdin), never
a race against the clock."""
import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_manifest_integrity import WholeImage, _align, _cli, _photo

LOCK = ".align.lock"
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
if sys.argv[2] == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture()
def src(tmp_path) -> Path:
    for i in range(3):
        _photo(tmp_path / "src" / "p" / f"{i}.jpg", i)
    return tmp_path / "src"


def _holder(lock: Path, how: str = "flock") -> subprocess.Popen:
    """A live process that holds ``lock`` (``how="flock"``) or only wrote its pid in it (``"pid"``)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _end(p: subprocess.Popen) -> None:
    p.stdin.close()
    assert p.wait(timeout=60) == 0


def test_a_run_in_progress_refuses_a_second_and_its_end_lets_the_next_in(src, tmp_path, capsys):
    dst = tmp_path / "out"
    holder = _holder(dst / LOCK)
    try:
        rc, err = _cli(capsys, src, dst)
        assert rc == 2 and f"being aligned by another run (pid {holder.pid})" in err and len(err.splitlines()) == 1
        rc, err = _cli(capsys, "--check", dst)
        assert rc == 2 and f"being aligned now (pid {holder.pid})" in err
        assert not (dst / "manifest.csv").exists() and not (dst / ".align_journal.csv").exists()
    finally:
        _end(holder)
    # the holder ended without removing its lock file (as after kill -9): a stale lock, taken over
    assert (dst / LOCK).read_text().strip() == str(holder.pid)
    assert len(_align(src, dst)) == 3
    assert not (dst / LOCK).exists()
    assert _cli(capsys, "--check", dst)[0] == 0


def test_a_lock_held_by_this_process_is_refused(src, tmp_path):
    from facecore.detection.alignlock import AlignmentBusy, lock_owner

    dst = tmp_path / "out"
    dst.mkdir()
    fd = os.open(dst / LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        assert lock_owner(dst) == os.getpid()
        with pytest.raises(AlignmentBusy, match=f"pid {os.getpid()}"):
            _align(src, dst)
    finally:
        os.close(fd)
    assert lock_owner(dst) is None and len(_align(src, dst)) == 3


def test_without_flock_the_pid_decides(src, tmp_path, monkeypatch):
    """On a file system without flock: a lock naming a live process is held, one naming an ended process is stale."""
    import facecore.detection.alignlock as alignlock
    from facecore.detection.alignlock import AlignmentBusy

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(alignlock.fcntl, "flock", no_flock)
    dst = tmp_path / "out"
    holder = _holder(dst / LOCK, "pid")
    try:
        assert alignlock.lock_owner(dst) == holder.pid
        with pytest.raises(AlignmentBusy, match=f"pid {holder.pid}"):
            _align(src, dst)
    finally:
        _end(holder)
    assert alignlock.lock_owner(dst) is None
    det = WholeImage()
    assert len(_align(src, dst, det)) == 3 and det.seen == 3 and not (dst / LOCK).exists()
