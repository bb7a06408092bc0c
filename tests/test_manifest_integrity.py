"""An aligned folder is never left stale or inconsistent while a run reports success, and ``--check``
tells a complete folder from one that is not. A stand-in detector (the whole image is the face) keeps
these tests fast and independent of the shared data."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecore.detection.align import template
from facecore.detection.detect import Detection
from facecore.detection.folder import CONFIG, JOURNAL, MANIFEST, align_folder, output_names, read_manifest


class WholeImage:
    """Finds one face filling each image (landmarks on the template scaled to it); counts images seen."""
    name, settings = "whole-image", {}

    def __init__(self):
        self.seen = 0

    def detect(self, images):
        self.seen += len(images)
        out = []
        for im in images:
            h, w = im.shape[:2]
            lm = (template(112) * [w / 112, h / 112]).astype(np.float32)[None]
            out.append(Detection(np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32), lm))
        return out


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (96, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def check_folder(dst, src=None):
    from facecore.detection.folder import check_folder  # imported here: the tests that need no new API also run on old code

    return check_folder(dst, src)


def _align(src: Path, dst: Path, detector=None, **kw):
    return align_folder(src, dst, num_workers=0, progress=False, detector=detector or WholeImage(), **kw)


@pytest.fixture()
def src(tmp_path) -> Path:
    for i in range(3):
        _photo(tmp_path / "src" / "p" / f"{i}.jpg", i)
    return tmp_path / "src"


def test_a_same_stem_source_added_later_gets_its_own_crop(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "out"
    _photo(src / "p" / "x.png", 1)
    m1 = _align(src, dst)
    first = (dst / m1.output[0]).read_bytes()
    _photo(src / "p" / "x.jpg", 2)  # sorts before x.png: it would take x.jpg's name from x.png
    m2 = _align(src, dst)
    assert m2.output.is_unique and len(m2) == 2
    out = dict(zip(m2.path, m2.output))
    assert out["p/x.png"] == m1.output[0] and (dst / out["p/x.png"]).read_bytes() == first  # kept, not overwritten
    assert (dst / out["p/x.jpg"]).read_bytes() != first
    check_folder(dst)


def test_two_rows_on_one_crop_are_both_redone(tmp_path):
    """A journal left by an older version with two sources on one crop: neither crop can be trusted."""
    src, dst = tmp_path / "src", tmp_path / "out"
    _photo(src / "p" / "x.jpg", 1)
    _photo(src / "p" / "x.png", 2)
    _align(src, dst)
    journal = (dst / JOURNAL).read_text().replace("p/x.png.jpg", "p/x.jpg")
    (dst / JOURNAL).write_text(journal)
    det = WholeImage()
    m = _align(src, dst, det)
    assert det.seen == 2 and m.output.is_unique
    check_folder(dst)


def test_output_names_avoid_crops_already_held():
    assert output_names(["p/x.jpg"], {"p/x.png": "p/x.jpg"}) == {"p/x.jpg": "p/x.jpg.jpg"}
    names = output_names(["a/x.png", "a/x.png.jpg", "a/x.jpg"], {"a/y.png": "a/x.png.jpg.jpg"})
    assert len(set(names.values()) | {"a/x.png.jpg.jpg"}) == 4


def test_a_source_rewritten_while_it_is_aligned_is_redone(tmp_path, monkeypatch):
    """The source changes (same size, other bytes) right after the read that is decoded: the journal
    must hold the digest of what was decoded, so that the next run sees the change and redoes it."""
    import facecore.detection.folder as folder

    src, dst = tmp_path / "src", tmp_path / "out"
    for i in range(3):
        _photo(src / "p" / f"{i}.bmp", i)  # an uncompressed format: another photo of the same size
    target, real, changed = src / "p" / "1.bmp", folder.load_rgb, []

    def racing(arg, max_side=1024):
        img = real(arg, max_side=max_side)
        if not changed and (arg == str(target) or arg == target.read_bytes()):
            _photo(target, 9)
            os.utime(target, ns=(2_000_000_000, 2_000_000_000))
            changed.append(True)
        return img

    monkeypatch.setattr(folder, "load_rgb", racing)
    m1 = _align(src, dst)
    monkeypatch.setattr(folder, "load_rgb", real)
    assert changed and m1.src_size[1] == target.stat().st_size
    det = WholeImage()
    m2 = _align(src, dst, det)
    assert det.seen == 1, "the photo changed under the first run must be aligned again"
    assert m2.src_sha1[1] == hashlib.sha1(target.read_bytes()).hexdigest()
    check_folder(dst)


def test_lost_rows_end_in_an_error_not_a_manifest_claiming_success(src, tmp_path, monkeypatch):
    """Rows lost from the journal (as two runs at once used to lose them) make the run fail."""
    import facecore.detection.folder as folder

    real = folder._align_batch
    monkeypatch.setattr(folder, "_align_batch", lambda *a, **k: real(*a, **k)[:-1])
    with pytest.raises(ValueError, match="did not complete: 1 of 3 sources have no row"):
        _align(src, tmp_path / "out")


def _cli(capsys, *args) -> tuple[int, str]:
    """``python -m facecore.detection.folder ARGS`` in this process (bench/bad_inputs.py runs it as a command):
    (exit code, stderr)."""
    from facecore.detection.folder import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    return rc, capsys.readouterr().err


def test_check_catches_a_truncated_manifest_a_missing_crop_and_a_shared_crop(src, tmp_path, capsys):
    dst = tmp_path / "out"
    _align(src, dst)
    assert _cli(capsys, "--check", dst)[0] == 0
    good = (dst / MANIFEST).read_text()
    (dst / MANIFEST).write_text("".join(good.splitlines(keepends=True)[:3]))  # whole rows cut off: parses
    rc, err = _cli(capsys, "--check", dst)
    assert rc == 2 and "2 rows, but its last complete run listed 3 sources" in err
    assert len(err.strip().splitlines()) == 1
    (dst / ".align_run.json").unlink()  # a folder of an older version: the sources tell
    rc, err = _cli(capsys, "--check", src, dst)
    assert rc == 2 and "1 of 3 sources have no row (first: p/2.jpg)" in err
    (dst / MANIFEST).write_text(good)
    (dst / "p" / "0.jpg").unlink()
    with pytest.raises(ValueError, match="1 crops it names are missing"):
        check_folder(dst)
    _align(src, dst)
    (dst / MANIFEST).write_text(good.replace(",p/2.jpg,ok", ",p/1.jpg,ok"))
    with pytest.raises(ValueError, match="output of more than one row"):
        check_folder(dst)


def test_check_catches_a_manifest_older_than_its_journal(src, tmp_path):
    dst = tmp_path / "out"
    _align(src, dst)
    _photo(src / "p" / "1.jpg", 7)
    with pytest.raises(ValueError, match="1 sources changed"):
        check_folder(dst)
    journal = (dst / JOURNAL).read_text()
    lines = journal.splitlines(keepends=True)
    (dst / JOURNAL).write_text(journal + lines[0].replace(",ok,", ",no_face,", 1))  # a later run's row
    with pytest.raises(ValueError, match="differ from the journal"):
        check_folder(dst)


@pytest.mark.parametrize("kw, flag", [({"size": 0}, "size 0"), ({"limit": -2}, "limit -2"), ({"limit": 0}, "limit 0"),
                                      ({"min_face_frac": 5.0}, "min_face_frac 5.0"),
                                      ({"min_face_frac": float("nan")}, "min_face_frac nan"),
                                      ({"quality": 101}, "quality 101"), ({"batch_size": 0}, "batch_size 0"),
                                      ({"max_side": 0}, "max_side 0"), ({"pad_frac": -1.0}, "pad_frac -1.0"),
                                      ({"size": 112.5}, "size 112.5"), ({"select": "biggest"}, "select 'biggest'")])
def test_bad_settings_are_refused_before_anything_is_written(src, tmp_path, kw, flag):
    with pytest.raises(ValueError, match=flag.replace("(", r"\(")):
        _align(src, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_settings_check_bounds():
    from facecore.detection.folder import check_settings

    check_settings(size=16, limit=None, min_face_frac=0.0, quality=100, num_workers=0)
    check_settings(size=2048, min_face_frac=1.0, limit=1)
    with pytest.raises(ValueError, match=r"--size 2049: must be an integer from 16 to 2048"):
        check_settings("--", size=2049)
    with pytest.raises(ValueError, match="--limit True"):
        check_settings("--", limit=True)


def test_cli_refuses_bad_flags_in_one_line_and_records_nothing(src, tmp_path, capsys):
    for flags, flag in [(["--size", "0"], "--size 0"), (["--limit", "-2"], "--limit -2"),
                        (["--min_face_frac", "5"], "--min_face_frac 5.0"), (["--size", "abc"], "--size"),
                        (["--check", "--limit", "0"], "--limit 0")]:
        rc, err = _cli(capsys, src, tmp_path / "out", *flags)
        assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()


def test_settings_recorded_with_nothing_aligned_do_not_block_a_corrected_run(src, tmp_path):
    """An older version recorded ``--size 0`` before failing: with no journal row there is nothing to protect."""
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / CONFIG).write_text(json.dumps({"size": 0, "select": "center_largest"}))
    assert len(_align(src, dst)) == 3
    assert json.loads((dst / CONFIG).read_text())["size"] == 112
    with pytest.raises(ValueError, match="other settings"):
        _align(src, dst, size=160)
    assert list(read_manifest(dst).status) == ["ok"] * 3
