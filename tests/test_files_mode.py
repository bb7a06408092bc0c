"""Atomic writes create files as a plain open() would: 0666 less the umask (not mkstemp's 0600)."""
import os
import stat

import pytest

from facecore.core.files import atomic_write_bytes, atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_respects_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_text(tmp_path / "sub" / "b.txt", "y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "sub" / "b.txt").stat().st_mode) == mode
    assert (tmp_path / "a.bin").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "sub"]  # no temporary file left
