"""One alignment at a time per destination folder.

``dst/.align.lock`` holds the owner's pid and is locked with ``flock`` for the whole run: the kernel
drops the lock when its process ends in any way (kill -9 included), so a lock left by a run that has
ended is stale by construction and the next run takes it over. On a file system without ``flock``
the pid decides: a lock naming a live process is held, one naming a process that has ended is
stale. A second run while the first holds the lock is refused with ``AlignmentBusy`` (a
``ValueError``) naming the owner's pid: two runs appending to one journal lose each other's rows.
"""
from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK = ".align.lock"
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class AlignmentBusy(ValueError):
    """Another run holds the destination's lock."""


def _pid_in(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or "x")
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _busy(dst: Path, pid: int | None) -> AlignmentBusy:
    who = f"pid {pid}" if pid else "another process"
    return AlignmentBusy(f"{dst} is being aligned by another run ({who}); wait for it to end "
                         f"(two runs at once would lose each other's rows)")


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _take(path: Path, dst: Path) -> int | None:
    """The locked descriptor of ``path`` (None where the folder cannot be written: then nobody else can
    write to it either); AlignmentBusy while another run holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(fd)
            os.close(fd)
            raise _busy(dst, pid) from None
        except OSError as e:
            if e.errno not in NO_FLOCK:
                os.close(fd)
                raise
            if _alive(_pid_in(fd)):
                pid = _pid_in(fd)
                os.close(fd)
                raise _busy(dst, pid) from None
        if _same_file(fd, path):  # not removed by the previous owner between our open and flock
            return fd
        os.close(fd)


@contextmanager
def alignment_lock(dst: str | os.PathLike) -> Iterator[None]:
    """Hold ``dst``'s alignment lock for the ``with`` block (``dst`` must exist); the lock file is
    removed when the block ends."""
    dst = Path(dst)
    path = dst / LOCK
    fd = _take(path, dst)
    if fd is None:
        yield
        return
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            if _same_file(fd, path):
                os.unlink(path)
        finally:
            os.close(fd)


def lock_owner(dst: str | os.PathLike) -> int | None:
    """The pid of the run that holds ``dst``'s lock now (0 when its pid is unknown), None when none does;
    takes nothing."""
    path = Path(dst) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fd) or 0
        except OSError as e:
            if e.errno not in NO_FLOCK:
                raise
            return _pid_in(fd) if _alive(_pid_in(fd)) else None
        return None
    finally:
        os.close(fd)
