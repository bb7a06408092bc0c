import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facecore.core.files import list_images, load_rgb
from conftest import need_data
from facecore.detection.folder import JOURNAL, align_folder, output_names, read_manifest, summarize

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def face_jpeg(lfw_dir) -> Path:
    return sorted(lfw_dir.glob("Aaron_Eckhart/*.jpg"))[0]


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, face_jpeg) -> Path:
    """One identity folder seeded with every kind of awkward file."""
    root = tmp_path_factory.mktemp("bad") / "src"
    d = root / "person"
    d.mkdir(parents=True)
    face = Image.open(face_jpeg).convert("RGB")
    raw = face_jpeg.read_bytes()
    (d / "empty.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(raw[: len(raw) // 2])
    (d / "text.jpg").write_text("this is not an image\n")
    face.convert("CMYK").save(d / "cmyk.jpg", "JPEG")
    g16 = (np.asarray(face.convert("L")).astype(np.uint16) * 257)
    Image.fromarray(g16).save(d / "sixteen_bit.png")
    rgba = face.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(d / "rgba.png")
    face.convert("L").save(d / "gray.jpg")
    face.resize((6000, 6000), Image.BILINEAR).save(d / "huge.jpg", "JPEG", quality=80)
    ramp = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    Image.fromarray(np.stack([ramp, ramp[::-1], ramp], axis=2)).save(d / "no_face.png")
    return root


EXPECTED = {"empty.jpg": "unreadable", "truncated.jpg": "unreadable", "text.jpg": "unreadable",
            "cmyk.jpg": "ok", "sixteen_bit.png": "ok", "rgba.png": "ok", "gray.jpg": "ok", "huge.jpg": "ok",
            "no_face.png": "no_face"}


def test_bad_inputs_get_the_right_status(bad_folder, tmp_path, capsys):
    m = align_folder(bad_folder, tmp_path / "out", num_workers=0, progress=False)
    got = {Path(p).name: s for p, s in zip(m.path, m.status)}
    assert got == EXPECTED
    assert all(m.loc[m.status == "unreadable", "message"].str.len() > 0)
    summary = summarize(m)
    for name in ("empty.jpg", "truncated.jpg", "text.jpg"):
        assert name in summary.loc["unreadable", "files"]
    assert summary.loc["ok", "images"] == 5
    huge = m[m.path.str.endswith("huge.jpg")].iloc[0]
    assert huge.width == 6000 and huge.x2 > 1000  # box reported in the original's pixels
    for out in m.loc[m.status == "ok", "output"]:
        crop = load_rgb(tmp_path / "out" / out).rgb
        assert crop.shape == (112, 112, 3)


def test_output_names_are_unambiguous():
    names = output_names(["a/x.png", "a/x.jpg", "b/y.jpeg"])
    assert len(set(names.values())) == 3 and names["b/y.jpeg"] == "b/y.jpg"


def test_changed_settings_are_refused(bad_folder, tmp_path):
    align_folder(bad_folder, tmp_path / "o", num_workers=0, progress=False, limit=1)
    with pytest.raises(ValueError, match="other settings"):
        align_folder(bad_folder, tmp_path / "o", size=160, num_workers=0, progress=False, limit=1)


def test_missing_source_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        align_folder(tmp_path / "nowhere", tmp_path / "o")


SCRIPT = """
import sys; sys.path.insert(0, {root!r})
from facecore.detection.folder import align_folder
align_folder({src!r}, {dst!r}, limit={limit}, batch_size=8, num_workers=1, progress=False)
"""


def _run(src, dst, limit):
    code = SCRIPT.format(root=str(ROOT), src=str(src), dst=str(dst), limit=limit)
    return subprocess.Popen([sys.executable, "-c", code])


def test_kill_9_then_resume_equals_uninterrupted_run(lfw_dir, tmp_path):
    limit = 96
    ref = _run(lfw_dir, tmp_path / "ref", limit)
    assert ref.wait(timeout=300) == 0
    dst = tmp_path / "killed"
    p = _run(lfw_dir, dst, limit)
    journal = dst / JOURNAL
    deadline = time.time() + 240
    while time.time() < deadline:
        if journal.exists() and journal.read_text().count("\n") >= 24:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    done_before = [row[1] for row in csv.reader(journal.read_text().split("\n")[:-1])]  # complete rows only
    assert 24 <= len(done_before) < limit, "the kill must land in the middle of the run"
    inodes = {o: (dst / o).stat().st_ino for o in done_before}
    assert _run(lfw_dir, dst, limit).wait(timeout=300) == 0
    # finished files were not redone (same inode: never rewritten)
    assert {o: (dst / o).stat().st_ino for o in done_before} == inodes
    a, b = read_manifest(tmp_path / "ref"), read_manifest(dst)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == limit
    for out in a.output[a.status == "ok"]:
        assert (tmp_path / "ref" / out).read_bytes() == (dst / out).read_bytes()
    assert not [f for f in os.listdir(dst) if f.endswith(".tmp")]


def test_list_images_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "a").mkdir()
    for n in ["a/1.jpg", "a/.hidden.jpg", "a/notes.txt", "a/2.PNG"]:
        (tmp_path / n).write_bytes(b"x")
    assert list_images(tmp_path) == ["a/1.jpg", "a/2.PNG"]


@pytest.fixture()
def three_faces(lfw_dir, tmp_path) -> Path:
    """A source tree of three LFW photos (one person), copied so that they can be changed."""
    import shutil

    src = tmp_path / "src" / "p"
    src.mkdir(parents=True)
    for i, f in enumerate(sorted(lfw_dir.glob("George_W_Bush/*.jpg"))[:3]):
        shutil.copy(f, src / f"{i}.jpg")
    return src.parent


class _NoDetector:
    """Fails the test when anything is detected: a resume that should redo nothing."""
    name, settings = "mtcnn", None

    def detect(self, images):
        raise AssertionError(f"{len(images)} images were detected again")


def test_resume_redoes_a_deleted_crop_and_a_replaced_source_only(three_faces, lfw_dir, tmp_path):
    dst = tmp_path / "out"
    m1 = align_folder(three_faces, dst, num_workers=0, progress=False)
    assert list(m1.status) == ["ok"] * 3 and list(m1.src_size) == [(three_faces / p).stat().st_size for p in m1.path]
    keep = (dst / "p/2.jpg").stat().st_ino
    (dst / "p/0.jpg").unlink()  # a crop lost
    other = sorted(lfw_dir.glob("Colin_Powell/*.jpg"))[0]
    (three_faces / "p/1.jpg").write_bytes(other.read_bytes())  # a source replaced
    m2 = align_folder(three_faces, dst, num_workers=0, progress=False)
    assert (dst / "p/0.jpg").is_file() and (dst / "p/2.jpg").stat().st_ino == keep  # only the stale ones redone
    assert m2.loc[0, "x1"] == m1.loc[0, "x1"] and m2.loc[1, "src_size"] == other.stat().st_size
    assert m2.loc[1, "x1"] != m1.loc[1, "x1"]  # the new photo's face, not the old one's
    assert len(m2) == 3 and m2.path.is_unique


def test_a_new_mtime_over_the_same_bytes_is_not_redone(three_faces, tmp_path):
    """A data set extracted or copied again (every mtime new, bytes the same) keeps its crops."""
    dst = tmp_path / "out"
    m1 = align_folder(three_faces, dst, num_workers=0, progress=False)
    inodes = [(dst / o).stat().st_ino for o in m1.output]  # a redone crop is written anew (a new inode)
    for p in m1.path:
        os.utime(three_faces / p, ns=(1_000_000_000, 1_000_000_000))
    m2 = align_folder(three_faces, dst, num_workers=0, progress=False)
    assert [(dst / o).stat().st_ino for o in m2.output] == inodes
    assert list(m2.src_mtime_ns) == [1_000_000_000] * 3 and list(m2.src_sha1) == list(m1.src_sha1)
    f = three_faces / m1.path[0]
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes: a change all the same
    f.write_bytes(bytes(data))
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    m3 = align_folder(three_faces, dst, num_workers=0, progress=False)
    assert [(dst / o).stat().st_ino == i for o, i in zip(m3.output, inodes)] == [False, True, True]
    assert m3.src_sha1[0] != m1.src_sha1[0]


def test_a_journal_of_the_old_format_is_resumed_without_redoing(three_faces, tmp_path):
    """Journals written before the size/mtime/padded columns (e.g. a 58k-image alignment) stay valid."""
    import json

    from facecore.detection.folder import CONFIG, MANIFEST, OLD_COLUMNS

    dst = tmp_path / "out"
    align_folder(three_faces, dst, num_workers=0, progress=False)
    rows = [line.split(",")[:len(OLD_COLUMNS)] for line in (dst / JOURNAL).read_text().splitlines()]
    (dst / JOURNAL).write_text("".join(",".join(r) + "\n" for r in rows))  # the old 22-column rows
    cfg = json.loads((dst / CONFIG).read_text())
    del cfg["detector"]  # the old config had no detector key
    (dst / CONFIG).write_text(json.dumps(cfg))
    (dst / MANIFEST).unlink()
    m = align_folder(three_faces, dst, num_workers=0, progress=False, detector=_NoDetector())
    assert list(m.status) == ["ok"] * 3 and m.src_size.isna().all()
    (dst / "p/1.jpg").unlink()  # an old row whose crop is gone is redone
    with pytest.raises(AssertionError, match="1 images were detected again"):
        align_folder(three_faces, dst, num_workers=0, progress=False, detector=_NoDetector())


def test_read_manifest_rejects_a_torn_file(three_faces, tmp_path):
    from facecore.detection.folder import MANIFEST

    dst = tmp_path / "out"
    align_folder(three_faces, dst, num_workers=0, progress=False)
    text = (dst / MANIFEST).read_text()
    (dst / MANIFEST).write_text(text[: len(text) - 40])  # cut mid-row
    with pytest.raises(ValueError, match="torn.*rerun align_folder"):
        read_manifest(dst)
    lines = text.splitlines(keepends=True)
    (dst / MANIFEST).write_text("".join(lines[:2]) + lines[2][:50] + "\n" + "".join(lines[3:]))  # a short row
    with pytest.raises(ValueError, match="line 3: damaged row"):
        read_manifest(dst)
    assert len(align_folder(three_faces, dst, num_workers=0, progress=False)) == 3  # a rerun rewrites it


def test_tight_crop_is_found_by_the_padded_retry(tmp_path):
    """A CFP profile cut to its fiducials' box that MTCNN misses: the retry on the padded photo finds
    it, its landmarks are the padded photo's (brute force: detect it padded) minus the border, and the
    manifest says the retry found it."""
    from PIL import Image

    from facecore.evaluation.cfp import read_fiducials
    from facecore.detection.detect import pad_image
    from facecore.detection.detectors import create_detector

    root = need_data("cfp")
    plain, retry = create_detector("mtcnn", pad_frac=0.0), create_detector("mtcnn")
    fid = read_fiducials(str(root))
    for name in sorted(k for k in fid if "/profile/" in k)[:40]:
        rgb = load_rgb(root / name).rgb
        lo, hi = fid[name].min(0).round().astype(int).clip(0), fid[name].max(0).round().astype(int)
        tight = np.ascontiguousarray(rgb[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1])
        if len(plain.detect([tight])[0]) == 0 and len(retry.detect([tight])[0]):
            break
    else:
        pytest.fail("no profile among the first 40 is missed plainly and found by the retry")
    got = retry.detect([tight])[0]
    padded, p = pad_image(tight, retry.pad_frac, retry.pad_mode)
    ref = plain.detect([padded])[0]
    assert got.padded and np.array_equal(got.landmarks, ref.landmarks - p) and np.array_equal(got.boxes, ref.boxes - p)
    src = tmp_path / "src" / "p"
    src.mkdir(parents=True)
    Image.fromarray(tight).save(src / "tight.png")
    m = align_folder(src.parent, tmp_path / "out", num_workers=0, progress=False, min_face_frac=0.0)
    assert m.loc[0, "status"] == "ok" and m.loc[0, "padded"] == 1
    off = align_folder(src.parent, tmp_path / "off", num_workers=0, progress=False, min_face_frac=0.0, pad_frac=0.0)
    assert off.loc[0, "status"] == "no_face"


def test_prefetch_keeps_order_and_a_bounded_number_of_images_ahead():
    """Pool.imap decodes the whole list ahead of the detector; _prefetch holds at most ``ahead``."""
    from facecore.detection.folder import _prefetch

    class Done:
        def __init__(self, pool, job):
            self.pool, self.job = pool, job

        def get(self):
            self.pool.outstanding -= 1
            return self.job[0]

    class FakePool:
        outstanding = peak = 0

        def apply_async(self, fn, args):
            self.outstanding += 1
            self.peak = max(self.peak, self.outstanding)
            return Done(self, args[0])

    pool = FakePool()
    jobs = [(f"img{i}.jpg", 1024) for i in range(100)]
    assert list(_prefetch(pool, jobs, 8)) == [j[0] for j in jobs]
    assert pool.peak == 8 and pool.outstanding == 0


def _run_read_only(folder: Path, cmd: list) -> subprocess.CompletedProcess:
    """``cmd`` run while ``folder`` is read-only: made so by chmod for a user; for root (who writes anyway)
    by a read-only bind mount in a private mount namespace (gone with the process); skip when impossible."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(c) for c in cmd]
    if os.geteuid() != 0:
        dirs = [folder, *[p for p in folder.rglob("*") if p.is_dir()]]
        for d in dirs:
            d.chmod(0o555)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        finally:
            for d in dirs:
                d.chmod(0o755)
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without rights to mount: cannot make a folder read-only")
    sh = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 97; shift; exec "$@"'
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", sh, "sh", str(folder), *cmd],
                       capture_output=True, text=True, env=env, timeout=600)
    if r.returncode == 97:
        pytest.skip(f"cannot mount {folder} read-only: {r.stderr.strip()}")
    return r


def test_read_only_destination_is_one_line_and_a_complete_one_a_no_op(three_faces, tmp_path):
    cli = [sys.executable, "-m", "facecore.detection.folder", three_faces]
    (tmp_path / "ro").mkdir()
    r = _run_read_only(tmp_path / "ro", [*cli, tmp_path / "ro"])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot write in destination" in r.stderr and "nothing aligned yet" in r.stderr
    dst = tmp_path / "out"
    assert subprocess.run([*map(str, cli), str(dst)], capture_output=True).returncode == 0
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in dst.rglob("*")}
    r = _run_read_only(dst, [*cli, dst])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in dst.rglob("*")} == before  # nothing rewritten
    (dst / "p" / "1.jpg").unlink()  # now one crop is to redo: refused, one line
    r = _run_read_only(dst, [*cli, dst])
    assert r.returncode == 2 and "1 of 3 images still to align" in r.stderr and len(r.stderr.strip().splitlines()) == 1
