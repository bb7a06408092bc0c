"""Bad inputs, one row each: the exit code, whether a traceback was printed, whether data was lost or stale.

    .venv/bin/python bench/bad_inputs.py [--only realtime,gallery,align,train,pipeline]

Every probe runs a command line the way a user would (``realtime.py``, ``python -m facecore.detection.folder``,
``python -m facecore.pipeline``, ``python -m facecore.training.train``) in a scratch folder and then checks what
is on disk. A row passes when the exit code is the documented one (2 for bad input, 0 for a run that
recovers or is stopped by a signal), no traceback is printed and nothing is lost or stale.

Add a probe with one small function::

    @probe("train", "fewer than two identities", expect=2)
    def _(work: Path) -> Outcome:
        r = run([PY, "-m", "facecore.training.train", ...])
        return Outcome(r.returncode, r.stderr, lost="")  # lost: what was lost or stale, "" if nothing
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from facecore.core.paths import PROJECT_ROOT as ROOT
from facecore.core.paths import data_root

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@dataclass
class Outcome:
    rc: int
    stderr: str
    lost: str = ""  # what was lost or stale ("" when nothing)


PROBES: list[tuple[str, str, tuple[int, ...], Callable[[Path], Outcome]]] = []


def probe(group: str, name: str, expect: int | tuple[int, ...] = 2):
    """Register ``fn(work_folder) -> Outcome`` as one row; ``expect``: the documented exit code(s)."""
    def add(fn: Callable[[Path], Outcome]) -> Callable[[Path], Outcome]:
        PROBES.append((group, name, (expect,) if isinstance(expect, int) else tuple(expect), fn))
        return fn

    return add


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900, **kw)


# ----------------------------------------------------------------------------- shared inputs
@lru_cache(maxsize=1)
def checkpoint() -> Path:
    """A small random EfficientNet-B0 checkpoint (the probes test plumbing, not accuracy)."""
    import torch

    from facecore.networks.models import checkpoint_meta, create_model, save_checkpoint

    torch.manual_seed(0)
    path = Path(tempfile.mkdtemp(prefix="bad-inputs-")) / "b0.pt"
    save_checkpoint(path, create_model("efficientnet-b0"), checkpoint_meta("efficientnet-b0", 512, 64))
    return path


CLIP = data_root() / "demo" / "short_hamilton_clip.mp4"
PEOPLE = data_root() / "demo" / "people_faces"


def realtime(*args, **kw) -> subprocess.CompletedProcess:
    return run([PY, ROOT / "realtime.py", "--checkpoint", checkpoint(), "--source", CLIP, "--no-display", *args], **kw)


def leftovers(folder: Path) -> list[str]:
    """Hidden or temporary files left in a folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- realtime.py
@probe("realtime", "--output_path in a missing folder")
def _(work: Path) -> Outcome:
    r = realtime("--output_path", work / "no" / "o.gif")
    return Outcome(r.returncode, r.stderr)


@probe("realtime", "--output_path is a folder")
def _(work: Path) -> Outcome:
    (work / "o.gif").mkdir()
    r = realtime("--output_path", work / "o.gif")
    return Outcome(r.returncode, r.stderr)


@probe("realtime", "--output_path in a read-only folder (/proc)")
def _(work: Path) -> Outcome:
    r = realtime("--output_path", "/proc/o.gif")
    return Outcome(r.returncode, r.stderr)


@probe("realtime", "--report_json is a folder")
def _(work: Path) -> Outcome:
    r = realtime("--output_path", work / "o.gif", "--report_json", work)
    return Outcome(r.returncode, r.stderr, "" if not (work / "o.gif").exists() else "wrote an output anyway")


@probe("realtime", "--threshold nan")
def _(work: Path) -> Outcome:
    r = realtime("--output_path", work / "o.gif", "--threshold", "nan")
    return Outcome(r.returncode, r.stderr)


@probe("realtime", "--threshold 5 (no cosine)")
def _(work: Path) -> Outcome:
    r = realtime("--output_path", work / "o.gif", "--threshold", "5")
    return Outcome(r.returncode, r.stderr)


@probe("realtime", "no output and no display")
def _(work: Path) -> Outcome:
    r = realtime()
    return Outcome(r.returncode, r.stderr)


@probe("realtime", "--checkpoint with a flipped byte")
def _(work: Path) -> Outcome:
    data = bytearray(checkpoint().read_bytes())
    data[len(data) // 2] ^= 0x10
    (work / "bad.pt").write_bytes(bytes(data))
    r = run([PY, ROOT / "realtime.py", "--checkpoint", work / "bad.pt", "--source", CLIP, "--no-display",
             "--output_path", work / "o.gif"])
    return Outcome(r.returncode, r.stderr)


def _signalled(work: Path, sig: signal.Signals, twice: bool) -> Outcome:
    gif, report = work / "o.gif", work / "r.json"
    p = subprocess.Popen([PY, ROOT / "realtime.py", "--checkpoint", checkpoint(), "--source", CLIP, "--no-display",
                          "--people_faces", PEOPLE, "--output_path", gif, "--report_json", report,
                          "--cache_dir", work / "cache"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.readline()  # "source: ...": the frame loop starts
    time.sleep(2)
    p.send_signal(sig)
    if twice:
        time.sleep(0.05)
        p.send_signal(sig)
    _, err = p.communicate(timeout=600)
    lost = []
    if not gif.exists():
        lost.append("no GIF")
    if not report.exists():
        lost.append("no report")
    elif not json.loads(report.read_text()).get("stopped_by"):
        lost.append("report does not say it was stopped")
    if leftovers(work):
        lost.append(f"left {leftovers(work)}")
    return Outcome(p.returncode, err, ", ".join(lost))


@probe("realtime", "SIGTERM mid-run", expect=0)
def _(work: Path) -> Outcome:
    return _signalled(work, signal.SIGTERM, twice=False)


@probe("realtime", "SIGTERM twice mid-run", expect=0)
def _(work: Path) -> Outcome:
    return _signalled(work, signal.SIGTERM, twice=True)


@probe("realtime", "Ctrl-C twice mid-run", expect=0)
def _(work: Path) -> Outcome:
    return _signalled(work, signal.SIGINT, twice=True)


# ----------------------------------------------------------------------------- gallery cache
def _gallery_run(work: Path, people: Path) -> subprocess.CompletedProcess:
    return realtime("--people_faces", people, "--max_frames", 2, "--report_json", work / "r.json",
                    "--cache_dir", work / "cache")


@probe("gallery", "corrupt cache entries (torn zip, empty file)", expect=0)
def _(work: Path) -> Outcome:
    people = work / "people"
    shutil.copytree(PEOPLE, people)
    _gallery_run(work, people)
    entries = sorted((work / "cache").glob("*/*/*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:40])
    entries[-1].write_bytes(b"")
    r = _gallery_run(work, people)
    from facecore.evaluation.embed import _read_entry

    bad = [e.name for e in entries if _read_entry(e) is None]
    named = all(str(e) in r.stderr for e in (entries[0], entries[-1]))
    return Outcome(r.returncode, r.stderr, (f"still unreadable: {bad}" if bad else "")
                   + ("" if named else " warning does not name the files"))


@probe("gallery", "photo removed and photo replaced", expect=0)
def _(work: Path) -> Outcome:
    from facecore.evaluation.embed import file_key

    people = work / "people"
    shutil.copytree(PEOPLE, people)
    photos = sorted(p for p in people.rglob("*") if p.is_file())
    _gallery_run(work, people)
    photos[0].unlink()
    from PIL import Image

    with Image.open(photos[1]) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos[1])
    r = _gallery_run(work, people)
    keys = {file_key(p) for p in people.rglob("*") if p.is_file()}
    stale = {e.stem for e in (work / "cache").glob("*/*/*.npz")} - keys
    return Outcome(r.returncode, r.stderr, f"{len(stale)} stale cache entries" if stale else "")


# ----------------------------------------------------------------------------- alignment journal
def _align(src: Path, dst: Path, *extra) -> subprocess.CompletedProcess:
    return run([PY, "-m", "facecore.detection.folder", src, dst, *extra])


def _three(work: Path) -> Path:
    src = work / "src" / "p"
    src.mkdir(parents=True)
    for i, f in enumerate(sorted((data_root() / "lfw" / "lfw-deepfunneled" / "George_W_Bush").glob("*.jpg"))[:3]):
        shutil.copy(f, src / f"{i}.jpg")
    return src.parent


@probe("align", "resume after a crop was deleted", expect=0)
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    (dst / "p" / "0.jpg").unlink()
    r = _align(src, dst)
    return Outcome(r.returncode, r.stderr, "" if (dst / "p" / "0.jpg").exists() else "crop p/0.jpg still missing")


@probe("align", "resume after a source was replaced", expect=0)
def _(work: Path) -> Outcome:
    from facecore.detection.folder import read_manifest

    src, dst = _three(work), work / "out"
    _align(src, dst)
    before = read_manifest(dst).loc[1, "x1"]
    other = sorted((data_root() / "lfw" / "lfw-deepfunneled" / "Colin_Powell").glob("*.jpg"))[0]
    (src / "p" / "1.jpg").write_bytes(other.read_bytes())
    r = _align(src, dst)
    after = read_manifest(dst).loc[1]
    stale = after.x1 == before or after.src_size != other.stat().st_size
    return Outcome(r.returncode, r.stderr, "manifest row of p/1.jpg is the old photo's" if stale else "")


@probe("align", "torn manifest.csv (cut mid-row) is refused")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    text = (dst / "manifest.csv").read_text()
    (dst / "manifest.csv").write_text(text[:-30])
    return Outcome(run([PY, "-m", "facecore.detection.folder", "--check", dst]).returncode,
                   run([PY, "-m", "facecore.detection.folder", "--check", dst]).stderr)


@probe("align", "torn manifest.csv, then a rerun rewrites it", expect=0)
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    text = (dst / "manifest.csv").read_text()
    (dst / "manifest.csv").write_text(text[:-30])
    r = _align(src, dst)
    ok = run([PY, "-m", "facecore.detection.folder", "--check", dst]).returncode == 0
    return Outcome(r.returncode, r.stderr, "" if ok else "manifest still torn")


@probe("align", "bad images (empty, truncated, text, CMYK, 16-bit, RGBA, grey, 6000 px, no face)", expect=0)
def _(work: Path) -> Outcome:
    from PIL import Image

    from facecore.detection.folder import read_manifest

    face_jpeg = sorted((data_root() / "lfw" / "lfw-deepfunneled" / "Aaron_Eckhart").glob("*.jpg"))[0]
    d = work / "src" / "person"
    d.mkdir(parents=True)
    face, raw = Image.open(face_jpeg).convert("RGB"), face_jpeg.read_bytes()
    (d / "empty.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(raw[: len(raw) // 2])
    (d / "text.jpg").write_text("this is not an image\n")
    face.convert("CMYK").save(d / "cmyk.jpg", "JPEG")
    Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257).save(d / "sixteen_bit.png")
    face.convert("RGBA").save(d / "rgba.png")
    face.convert("L").save(d / "gray.jpg")
    face.resize((6000, 6000)).save(d / "huge.jpg", "JPEG", quality=80)
    ramp = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    Image.fromarray(np.stack([ramp, ramp[::-1], ramp], axis=2)).save(d / "no_face.png")
    r = _align(d.parent, work / "out", "--min_face_frac", "0.2")
    m = read_manifest(work / "out")
    got = {Path(p).name: s for p, s in zip(m.path, m.status)}
    want = {"empty.jpg": "unreadable", "truncated.jpg": "unreadable", "text.jpg": "unreadable", "cmyk.jpg": "ok",
            "sixteen_bit.png": "ok", "rgba.png": "ok", "gray.jpg": "ok", "huge.jpg": "ok", "no_face.png": "no_face"}
    wrong = {k: v for k, v in got.items() if want.get(k) != v}
    missing = [o for o in m.output[m.status == "ok"] if not (work / "out" / o).exists()]
    return Outcome(r.returncode, r.stderr, "; ".join(filter(None, [wrong and f"wrong status {wrong}",
                                                                     missing and f"missing crops {missing}"])))


# ----------------------------------------------------------------------------- the training half
def _pipeline_probe(stage: str, item: str) -> Callable[[Path], Outcome]:
    def fn(work: Path) -> Outcome:
        r = run([PY, "-m", "facecore.pipeline", "--profile", "smoke", "--stages", stage, "-p", item, "--dry-run"])
        return Outcome(r.returncode, r.stderr)
    return fn


for _stage, _item, _what in [("ce", "EPOCHS=abc", "wrong type"), ("benchmarks", "NOPE=1", "no such parameter"),
                             ("ce", "TRAINING={EPOCH: 3}", "no such shared setting")]:
    probe("pipeline", f"-p {_item} ({_what})")(_pipeline_probe(_stage, _item))


@probe("train", "fewer than two identities")
def _(work: Path) -> Outcome:
    from PIL import Image

    d = work / "data" / "only_one"
    d.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((112, 112, 3), 40 * i, np.uint8)).save(d / f"{i}.jpg")
    r = run([PY, "-m", "facecore.training.train", "--out", work / "run", "--set", f'data_dir="{work / "data"}"',
             "--set", 'lfw_dir=""', "--set", "min_images=1", "--set", "epochs=1", "--quiet"])
    return Outcome(r.returncode, r.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated groups (default: all)")
    args = ap.parse_args()
    groups = {g for g in args.only.split(",") if g}
    rows = [p for p in PROBES if not groups or p[0] in groups]
    print(f"{'group':9s} {'probe':66s} {'exit':>4s} {'want':>5s} {'traceback':>9s}  lost or stale -> verdict", flush=True)
    failed = 0
    for group, name, expect, fn in rows:
        with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
            try:
                o = fn(Path(tmp))
            except Exception as e:  # noqa: BLE001 - a probe that breaks is a failed row, not a crash
                o = Outcome(-1, "", f"probe raised {type(e).__name__}: {e}")
        tb = "Traceback" in o.stderr
        ok = o.rc in expect and not tb and not o.lost
        failed += not ok
        first = o.stderr.strip().splitlines()[-1][:90] if o.stderr.strip() else ""
        print(f"{group:9s} {name[:66]:66s} {o.rc:4d} {'/'.join(map(str, expect)):>5s} {('yes' if tb else 'no'):>9s}  "
              f"{o.lost or 'nothing'} -> {'ok' if ok else 'FAIL'}" + (f"  [{first}]" if first else ""), flush=True)
    print(f"{len(rows) - failed} of {len(rows)} rows pass")


if __name__ == "__main__":
    main()
