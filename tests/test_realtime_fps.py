"""bench/realtime_fps.py: both loops on the first frames of the demo clip, the lines it prints written to --out."""
from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, need_data


def test_a_short_run_writes_what_it_prints(tmp_path):
    demo = need_data("demo")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "realtime_fps.py"), "--max_frames", "4",
                          "--people_faces", str(demo / "people_faces"), "--cache_dir", str(tmp_path / "gallery"),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    written = (tmp_path / "realtime_fps.md").read_text().splitlines()
    assert written[0] == "# Frames per second of realtime.py's pipeline" and "--max_frames 4" in written[2]
    bullets = [line[2:] for line in written if line.startswith("- ")]
    assert len(bullets) == 8 and bullets[1:] == printed[-7:]  # the clip's path shortened to its name in the file
    assert bullets[0].startswith("clip: short_hamilton_clip.mp4 (4 frames)") and "fps" in bullets[2]
