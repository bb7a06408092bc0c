"""Bad inputs, one row each: the exit code, whether a traceback was printed, whether data was lost or stale.

    .venv/bin/python bench/bad_inputs.py [--only realtime,realtime-io,gallery,align,train,pipeline]


    .venv/bin/python bench/bad_inputs.py [--only realtime,gallery,align,train,pipeline,outputs,readonly,caches,people]


    .venv/bin/python bench/bad_inputs.py [--only realtime,gallery,align,align-integrity,train,pipeline]

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

from facecore.core.files import atomic_write_text, file_digest
from facecore.core.paths import PROJECT_ROOT as ROOT, data_root
from facecore.detection.folder import read_manifest
from facecore.evaluation.embed import _read_entry, embed_files, file_key
from facecore.networks.models import checkpoint_meta, create_model, load_embedder, save_checkpoint

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

    bad = [e.name for e in entries if _read_entry(e) is None]
    named = all(str(e) in r.stderr for e in (entries[0], entries[-1]))
    return Outcome(r.returncode, r.stderr, (f"still unreadable: {bad}" if bad else "")
                   + ("" if named else " warning does not name the files"))


@probe("gallery", "photo removed and photo replaced", expect=0)
def _(work: Path) -> Outcome:
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


# ----------------------------------------------------------------------------- realtime-io: outputs under stress
def _realtime_io(work: Path, *args, source=CLIP, file_limit_kib: int | None = None) -> subprocess.CompletedProcess:
    """realtime.py on ``source`` with an empty gallery, its cache in ``work``; under ``ulimit -f`` when given."""
    (work / "people").mkdir(exist_ok=True)
    cmd = [PY, ROOT / "realtime.py", "--checkpoint", checkpoint(), "--source", source, "--no-display",
           "--people_faces", work / "people", "--cache_dir", work / "cache", "--threshold", "-1", *args]
    if file_limit_kib is None:
        return run(cmd)
    line = " ".join(f"'{c}'" for c in cmd)
    env = {**ENV, "PYTHONDONTWRITEBYTECODE": "1"}  # Python's own .pyc writes would hit the limit first
    return subprocess.run(["bash", "-c", f"ulimit -f {file_limit_kib} && exec {line}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _untouched(work: Path, r: subprocess.CompletedProcess, out: Path, old: bytes, absent: list[Path]) -> str:
    """What went wrong with a run that must fail cleanly: a 'wrote' line, more than one error line,
    an older output changed, a file that should not exist, a hidden temporary file."""
    errors = [x for x in r.stderr.strip().splitlines() if not x.startswith("warning:") and not x.startswith("frames:")]
    bad = ["printed 'wrote'"] * ("wrote" in r.stdout) + [f"{len(errors)} error lines"] * (len(errors) != 1)
    bad += ["older output changed"] * (out.read_bytes() != old)
    bad += [f"{p.name} exists" for p in absent if p.exists()]
    return ", ".join(bad + ([f"left {leftovers(out.parent)}"] if leftovers(out.parent) else []))


def _zero_frames(work: Path, source: Path) -> Outcome:
    (out := work / "out").mkdir()
    (out / "o.gif").write_bytes(b"an older run's gif")
    r = _realtime_io(work, "-o", out / "o.gif", "--report_json", out / "r.json", source=source)
    return Outcome(r.returncode, r.stderr, _untouched(work, r, out / "o.gif", b"an older run's gif", [out / "r.json"]))


@probe("realtime-io", "0 frames: a folder of unreadable images, an older GIF at -o")
def _(work: Path) -> Outcome:
    (frames := work / "frames").mkdir()
    (frames / "a.jpg").write_bytes(b"not a jpeg")
    (frames / "b.png").write_bytes(b"")
    return _zero_frames(work, frames)


@probe("realtime-io", "0 frames: a garbage .mp4, an older GIF at -o")
def _(work: Path) -> Outcome:
    (work / "garbage.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + os.urandom(4000))
    return _zero_frames(work, work / "garbage.mp4")


@probe("realtime-io", "0 frames: an empty image folder")
def _(work: Path) -> Outcome:
    (work / "frames").mkdir()
    return _zero_frames(work, work / "frames")


@probe("realtime-io", "video cut in half mid-stream (index first): warns frames read of promised", expect=0)
def _(work: Path) -> Outcome:
    from imageio_ffmpeg import get_ffmpeg_exe

    whole = work / "whole.mp4"
    subprocess.run([get_ffmpeg_exe(), "-v", "error", "-i", CLIP, "-c", "copy", "-movflags", "+faststart", whole],
                   check=True)
    data = whole.read_bytes()
    (work / "cut.mp4").write_bytes(data[: len(data) // 2])
    r = _realtime_io(work, "-o", work / "o.gif", "--report_json", work / "r.json", "--detect_every", "10",
                     source=work / "cut.mp4")
    warned = "of the 275 frames its header promises" in r.stderr
    rep = json.loads((work / "r.json").read_text()) if (work / "r.json").exists() else {}
    lost = [] if warned else ["no warning"]
    lost += [] if "275 frames" in rep.get("source_warning", "") else ["report has no source_warning"]
    return Outcome(r.returncode, r.stderr, ", ".join(lost))


def _disk_full(work: Path, target: str, limit_kib: int) -> Outcome:
    (out := work / "out").mkdir()
    (out / "o.gif").write_bytes(b"an older run's gif")
    outputs = ["--report_json", out / "r.json"] + ([] if target == "r.json" else ["-o", out / target])
    r = _realtime_io(work, "--max_frames", "20", *outputs, file_limit_kib=limit_kib)
    lost = _untouched(work, r, out / "o.gif", b"an older run's gif",
                      [out / "r.json"] + ([out / target] if target != "o.gif" else []))
    if str(out / target) not in r.stderr:
        lost = ", ".join(filter(None, [lost, "error does not name the file"]))
    return Outcome(r.returncode, r.stderr, lost)


for _target, _kib in [("o.gif", 8), ("o.mp4", 8), ("r.json", 1)]:
    probe("realtime-io", f"ulimit -f {_kib} (disk full) while writing {_target}")(
        lambda work, _t=_target, _k=_kib: _disk_full(work, _t, _k))


# ----------------------------------------------------------------------------- values and profiles
# Values that cannot be right are refused where they enter (facecore.core.checks, settings limits,
# checkpoint meta and weights), before any work; a malformed profile is one line. All exit 2.
def _spoiled_checkpoint(work: Path, name: str, change) -> Path:
    """``checkpoint()`` with ``change(blob)`` applied, written as a user's broken file would be."""
    import torch

    blob = torch.load(checkpoint(), weights_only=True)
    change(blob)
    torch.save(blob, work / name)
    return work / name


def _nan_weights(blob: dict) -> None:
    next(v for v in blob["state_dict"].values() if v.is_floating_point()).fill_(float("nan"))


_META = [("weights hold NaN", _nan_weights),
         ("meta threshold NaN", lambda b: b["meta"].update(threshold=float("nan"), threshold_fpr=0.01)),
         ("meta thresholds_by_fpr 7.5", lambda b: b["meta"].update(thresholds_by_fpr={"0.01": 7.5})),
         ("meta input_size 0", lambda b: b["meta"].update(input_size=0)),
         ("meta without arch", lambda b: b["meta"].pop("arch")),
         ("meta unknown arch", lambda b: b["meta"].update(arch="resnet9000")),
         ("meta embedding_dim 0", lambda b: b["meta"].update(embedding_dim=0)),
         ("meta mean of one number", lambda b: b["meta"].update(mean=[0.5])),
         ("meta std 0", lambda b: b["meta"].update(std=[0.0, 0.0, 0.0]))]


def _realtime_meta_probe(change) -> Callable[[Path], Outcome]:
    def fn(work: Path) -> Outcome:
        bad = _spoiled_checkpoint(work, "bad.pt", change)
        r = run([PY, ROOT / "realtime.py", "--checkpoint", bad, "--source", CLIP, "--no-display",
                 "--people_faces", PEOPLE, "--output_path", work / "o.gif", "--cache_dir", work / "cache"])
        named = str(bad) in r.stderr
        return Outcome(r.returncode, r.stderr, ("" if named else "error does not name the file")
                       + (" wrote a GIF anyway" if (work / "o.gif").exists() else ""))
    return fn


for _what, _change in _META:
    probe("values", f"realtime --checkpoint whose {_what}")(_realtime_meta_probe(_change))


for _stage, _item in [("ce", "LR=nan"), ("ce", "LR=-1"), ("ce", "EPOCHS=0"), ("ce", "EPOCHS=-3"),
                      ("ce", "BATCH_SIZE=0"), ("ce", "ARCH=resnet9000"), ("ce", "INPUT_SIZE=8"),
                      ("ce", "TRAINING={EPOCHS: abc}"),
                      ("ce", "TRAINING={LR: .nan}"), ("ce", "CE_SCALE=inf"), ("distill", "ARCH=resnet9000"),
                      ("distill", "LR=0")]:
    probe("values", f"pipeline --stages {_stage} -p {_item} --dry-run")(_pipeline_probe(_stage, _item))


@probe("values", "pipeline -p TRAINING={EPOCHS: 5, LR: 0.2} reaches the notebook", expect=0)
def _(work: Path) -> Outcome:
    r = run([PY, "-m", "facecore.pipeline", "--profile", "smoke", "--stages", "ce", "-p",
             "TRAINING={EPOCHS: 5, LR: 0.2}", "--dry-run"])
    ok = "'EPOCHS': 5, 'LR': 0.2" in r.stdout
    return Outcome(r.returncode, r.stderr, "" if ok else "the profile's EPOCHS/LR reach the notebook instead")


def _train(work: Path, *sets: str) -> subprocess.CompletedProcess:
    return run([PY, "-m", "facecore.training.train", "--out", work / "run", "--quiet", *[a for s in sets for a in ("--set", s)]])


def _train_set_probe(item: str) -> Callable[[Path], Outcome]:
    def fn(work: Path) -> Outcome:
        r = _train(work, item)
        return Outcome(r.returncode, r.stderr, "made the run folder" if (work / "run").exists() else "")
    return fn


for _item in ["lr=NaN", "lr=-1", "epochs=0", "batch_size=0", 'arch="resnet9000"', 'epochs="3"', "lr"]:
    probe("values", f"train --set {_item}")(_train_set_probe(_item))


def _two_people(work: Path) -> Path:
    from PIL import Image

    for who in ("a", "b"):
        (work / "data" / who).mkdir(parents=True)
        for i in range(3):
            grey = np.full((112, 112, 3), 40 * i + (who == "b") * 100, np.uint8)
            Image.fromarray(grey).save(work / "data" / who / f"{i}.jpg")
    return work / "data"


@probe("values", "train resuming a last.pt whose weights hold NaN")
def _(work: Path) -> Outcome:
    data = _two_people(work)
    (work / "run").mkdir()
    last = _spoiled_checkpoint(work / "run", "last.pt", _nan_weights)
    before = last.read_bytes()
    r = _train(work, f'data_dir="{data}"', 'lfw_dir=""', "min_images=1", "epochs=1", f'cache_dir="{work / "cache"}"')
    return Outcome(r.returncode, r.stderr, "" if last.read_bytes() == before else "last.pt was replaced")


@probe("values", "train --set init_from=<a checkpoint whose weights hold NaN>")
def _(work: Path) -> Outcome:
    data = _two_people(work)
    bad = _spoiled_checkpoint(work, "bad.pt", _nan_weights)
    r = _train(work, f'data_dir="{data}"', 'lfw_dir=""', "min_images=1", "epochs=1", f'cache_dir="{work / "cache"}"',
               f'init_from="{bad}"')
    return Outcome(r.returncode, r.stderr, "wrote last.pt" if (work / "run" / "last.pt").exists() else "")


_CE = "notebook: notebooks/ce-loss/ce-loss.ipynb"
_PROFILES = [("bad YAML", "stages: [\n"), ("stages: [1, 2]", "stages: [1, 2]\n"),
             ("a list at top level", "- a\n- b\n"), ("empty file", ""),
             ("a stage without notebook or command", "stages:\n  - name: x\n"),
             ("a missing notebook file", "stages:\n  - {name: x, notebook: notebooks/nope.ipynb}\n"),
             ("an unknown stage key", f"stages:\n  - {{name: x, {_CE}, params: {{}}}}\n"),
             ("an unknown top-level key", "stages: []\nextra: 1\n"),
             ("a setting given flat and in TRAINING",
              f"stages:\n  - {{name: x, {_CE}, parameters: {{EPOCHS: 1, TRAINING: {{EPOCHS: 2}}}}}}\n"),
             ("a setting out of range (LR: .nan)", f"stages:\n  - {{name: x, {_CE}, parameters: {{LR: .nan}}}}\n")]


def _profile_probe(text: str) -> Callable[[Path], Outcome]:
    def fn(work: Path) -> Outcome:
        (work / "p.yaml").write_text(text)
        r = run([PY, "-m", "facecore.pipeline", "--profile", work / "p.yaml", "--dry-run"])
        one = len(r.stderr.strip().splitlines()) == 1
        return Outcome(r.returncode, r.stderr, "" if one else "not one line")
    return fn


for _what, _text in _PROFILES:
    probe("profiles", f"--profile FILE with {_what}")(_profile_probe(_text))


@probe("profiles", "--profile missing.yaml (a path: no such file)")
def _(work: Path) -> Outcome:
    r = run([PY, "-m", "facecore.pipeline", "--profile", work / "missing.yaml", "--list"])
    return Outcome(r.returncode, r.stderr)


@probe("profiles", "--profile ./FILE.yml by path runs its stages", expect=0)
def _(work: Path) -> Outcome:
    (work / "mine.yml").write_text("stages:\n  - {name: mine, notebook: notebooks/ce-loss/ce-loss.ipynb, "
                                   "parameters: {EPOCHS: 1}}\n")
    r = run([PY, "-m", "facecore.pipeline", "--profile", work / "mine.yml", "--dry-run"])
    return Outcome(r.returncode, r.stderr, "" if "'EPOCHS': 1" in r.stdout else "the file's stage did not run")


# ============================================================================= outputs, caches, read-only, people
# Groups "outputs", "readonly", "caches", "people": no file that is not facecore's own is written or deleted
# (facecore.core.files.output_target, facecore.core.cache), a damaged cache entry is a miss, a read-only destination
# is one line (or a no-op when complete), a person folder without a readable photo is named.
def _one_line(r: subprocess.CompletedProcess) -> str:
    return "" if len(r.stderr.strip().splitlines()) == 1 else f"{len(r.stderr.strip().splitlines())} stderr lines"


def _kind(p: Path) -> str:
    import stat as st

    m = os.lstat(p).st_mode
    return next((k for f, k in ((st.S_ISLNK, "link"), (st.S_ISFIFO, "fifo"), (st.S_ISSOCK, "socket"),
                                (st.S_ISCHR, "char device"), (st.S_ISDIR, "folder"), (st.S_ISREG, "file")) if f(m)), "?")


def _char_device(work: Path) -> Path:
    """A /dev/null-like node: a real character device (1, 3) where mknod is allowed, else a link to /dev/null."""
    p = work / "null.json"
    try:
        import stat as st

        os.mknod(p, st.S_IFCHR | 0o666, os.makedev(1, 3))
    except (OSError, AttributeError):
        p.symlink_to("/dev/null")
    return p


def _refused(work: Path, node: Path, *args) -> Outcome:
    kind = _kind(node)
    r = realtime(*args)
    lost = [] if _kind(node) == kind else [f"{node.name} became a {_kind(node)}"]
    lost += [x for x in (_one_line(r), f"left {leftovers(work)}" if leftovers(work) else "") if x]
    return Outcome(r.returncode, r.stderr, ", ".join(lost))


@probe("outputs", "--report_json on a FIFO")
def _(work: Path) -> Outcome:
    os.mkfifo(work / "r.json")
    return _refused(work, work / "r.json", "--report_json", work / "r.json")


@probe("outputs", "--report_json on a /dev/null-like character device")
def _(work: Path) -> Outcome:
    node = _char_device(work)
    return _refused(work, node, "--output_path", work / "o.gif", "--report_json", node)


@probe("outputs", "--output_path on a socket named o.gif")
def _(work: Path) -> Outcome:
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(work / "o.gif"))
    try:
        return _refused(work, work / "o.gif", "--output_path", work / "o.gif")
    finally:
        s.close()


@probe("outputs", "--output_path on a link to a FIFO", expect=2)
def _(work: Path) -> Outcome:
    os.mkfifo(work / "pipe")
    (work / "o.gif").symlink_to(work / "pipe")
    return _refused(work, work / "pipe", "--output_path", work / "o.gif")


@probe("outputs", "--output_path and --report_json are links: written through", expect=0)
def _(work: Path) -> Outcome:
    (work / "real").mkdir()
    (work / "real" / "o.gif").write_bytes(b"old")
    (work / "real" / "r.json").write_text("old")
    (work / "o.gif").symlink_to(work / "real" / "o.gif")
    (work / "r.json").symlink_to(work / "real" / "r.json")
    r = realtime("--max_frames", 3, "--output_path", work / "o.gif", "--report_json", work / "r.json")
    lost = [f"{n} is no longer a link" for n in ("o.gif", "r.json") if not (work / n).is_symlink()]
    if (work / "real" / "o.gif").read_bytes()[:3] != b"GIF":
        lost.append("the link's target GIF is not the new one")
    if "frames_processed" not in (work / "real" / "r.json").read_text():
        lost.append("the link's target report is not the new one")
    return Outcome(r.returncode, r.stderr, ", ".join(lost + [f"left {leftovers(work)}"] * bool(leftovers(work))))


def _align_timed(src: Path, dst: Path, timeout_s: int = 300) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([PY, "-m", "facecore.detection.folder", str(src), str(dst)], cwd=ROOT, env=ENV,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([], -9, "", f"hung for {timeout_s} s")


@probe("outputs", "align: manifest.csv is a FIFO (no hang)")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    dst.mkdir()
    os.mkfifo(dst / "manifest.csv")
    r = _align_timed(src, dst)
    return Outcome(r.returncode, r.stderr, _one_line(r) or ("" if _kind(dst / "manifest.csv") == "fifo" else "replaced"))


@probe("outputs", "align: a crop's path is a FIFO")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    (dst / "p").mkdir(parents=True)
    os.mkfifo(dst / "p" / "1.jpg")
    r = _align_timed(src, dst)
    return Outcome(r.returncode, r.stderr, _one_line(r) or ("" if _kind(dst / "p" / "1.jpg") == "fifo" else "replaced"))


def _read_only(folder: Path, cmd: list) -> subprocess.CompletedProcess:
    """``cmd`` while ``folder`` is read-only: chmod for a user; for root a read-only bind mount in a
    private mount namespace (gone with the process)."""
    cmd = [str(c) for c in cmd]
    if os.geteuid() != 0:
        dirs = [folder, *[p for p in folder.rglob("*") if p.is_dir()]]
        for d in dirs:
            d.chmod(0o555)
        try:
            return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
        finally:
            for d in dirs:
                d.chmod(0o755)
    sh = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 97; shift; exec "$@"'
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", sh, "sh", str(folder), *cmd],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


@probe("readonly", "align into a read-only folder")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    dst.mkdir()
    r = _read_only(dst, [PY, "-m", "facecore.detection.folder", src, dst])
    return Outcome(r.returncode, r.stderr, _one_line(r) or ("" if not any(dst.iterdir()) else "wrote in it"))


@probe("readonly", "re-run a complete alignment on a read-only folder", expect=0)
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    r = _read_only(dst, [PY, "-m", "facecore.detection.folder", src, dst])
    after = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    return Outcome(r.returncode, r.stderr, "" if after == before else "files changed")


def _gallery_at(work: Path, people: Path, cache: Path, *extra) -> subprocess.CompletedProcess:
    return realtime("--people_faces", people, "--max_frames", 2, "--report_json", work / "r.json",
                    "--cache_dir", cache, *extra)


@probe("caches", "--cache_dir at a folder holding the user's exp1/run3/results.npz", expect=0)
def _(work: Path) -> Outcome:
    mine = work / "mine" / "exp1" / "run3" / "results.npz"
    mine.parent.mkdir(parents=True)
    np.savez(mine, x=np.arange(3))
    r = _gallery_at(work, PEOPLE, work / "mine")
    return Outcome(r.returncode, r.stderr, "" if mine.exists() else "deleted the user's results.npz")


@probe("caches", "--cache_dir at an evaluation embedding cache", expect=0)
def _(work: Path) -> Outcome:
    crops = sorted((data_root() / "lfw" / "lfw-deepfunneled" / "George_W_Bush").glob("*.jpg"))[:4]
    embed_files(crops, load_embedder(checkpoint()), aligned=True, cache_dir=work / "emb", progress=False)
    before = sorted((work / "emb").rglob("*.npz"))
    r = _gallery_at(work, PEOPLE, work / "emb")
    gone = [p.name for p in before if not p.exists()]
    return Outcome(r.returncode, r.stderr, f"deleted {len(gone)} evaluation entries" if gone else "")


@probe("caches", "two galleries share one cache: A, B, A again re-embeds nothing", expect=0)
def _(work: Path) -> Outcome:
    a, b = work / "A", work / "B"
    shutil.copytree(PEOPLE, a)
    b.mkdir()
    first = sorted(p for p in PEOPLE.rglob("*") if p.is_file())[0]
    shutil.copy(first, b / f"Solo{first.suffix}")
    other = sorted((data_root() / "lfw" / "lfw-deepfunneled" / "Colin_Powell").glob("*.jpg"))[0]
    shutil.copy(other, b / "Colin.jpg")
    for g in (a, b):
        _gallery_at(work, g, work / "cache")
    stamp = {p: p.stat().st_ino for p in (work / "cache").rglob("*.npz")}
    r = _gallery_at(work, a, work / "cache")
    now = {p: p.stat().st_ino for p in (work / "cache").rglob("*.npz")}
    redone = [p.name for p in stamp if now.get(p) != stamp[p]]
    return Outcome(r.returncode, r.stderr, f"{len(redone)} entries deleted or re-embedded" if redone else "")


@probe("caches", "damaged entries: a folder, a FIFO, another model's dimension", expect=0)
def _(work: Path) -> Outcome:
    people = work / "people"
    shutil.copytree(PEOPLE, people)
    shutil.copy(sorted((data_root() / "lfw" / "lfw-deepfunneled" / "Colin_Powell").glob("*.jpg"))[0], people / "Colin.jpg")
    _gallery_at(work, people, work / "cache")
    entries = sorted((work / "cache").glob("*/*/*.npz"))
    if len(entries) < 3:
        return Outcome(-1, "", f"only {len(entries)} cache entries to damage")
    entries[0].unlink()
    entries[0].mkdir()
    entries[1].unlink()
    os.mkfifo(entries[1])
    np.savez(entries[2], emb=np.ones(7, np.float32), status=np.array("ok"), n_faces=np.array(1))
    r = _gallery_at(work, people, work / "cache")
    lost = [f"{e.name} not named" for e in entries[:3] if str(e) not in r.stderr]
    warned = [ln for ln in r.stderr.splitlines() if "cache entry" in ln]
    if len(warned) != 3:
        lost.append(f"{len(warned)} warning lines, not 3")
    r2 = _gallery_at(work, people, work / "cache")
    if str(entries[2]) in r2.stderr:
        lost.append("the other model's entry was not rewritten")
    return Outcome(max(r.returncode, r2.returncode), r.stderr + r2.stderr, ", ".join(lost))


@probe("people", "person folders: one empty, one with only .heic/.gif files", expect=0)
def _(work: Path) -> Outcome:
    people = work / "people"
    shutil.copytree(PEOPLE, people)
    (people / "Empty Person").mkdir()
    (people / "José Núñez").mkdir()
    (people / "José Núñez" / "a.heic").write_bytes(b"\0\0\0\x18ftypheic")
    first = sorted(p for p in PEOPLE.rglob("*") if p.is_file())[0]
    from PIL import Image

    Image.open(first).convert("RGB").save(people / "José Núñez" / "b.gif")
    r = _gallery_at(work, people, work / "cache")
    lost = [f"{n} not named" for n in ("Empty Person", "José Núñez") if f"{n}: no photo" not in r.stderr]
    return Outcome(r.returncode, r.stderr, ", ".join(lost))



# ----------------------------------------------------------------------------- align-integrity
# An aligned folder is never left stale or inconsistent by a run that exits 0, and --check tells.
def _check(dst: Path, *src) -> subprocess.CompletedProcess:
    return run([PY, "-m", "facecore.detection.folder", "--check", *src, dst])


for _flag, _value in [("--limit", "-2"), ("--size", "0"), ("--size", "100000"), ("--min_face_frac", "5"),
                      ("--min_face_frac", "nan"), ("--limit", "abc")]:
    def _flag_refused(work: Path, flag=_flag, value=_value) -> Outcome:
        r = _align(_three(work), work / "out", flag, value)
        one = len(r.stderr.strip().splitlines()) == 1 and flag in r.stderr
        return Outcome(r.returncode, r.stderr, "; ".join(filter(None, [
            (work / "out").exists() and "the destination was created", not one and "not one line naming the flag"])))
    probe("align-integrity", f"{_flag} {_value} is refused before anything is written")(_flag_refused)


@probe("align-integrity", "--size 0, then the corrected rerun runs", expect=0)
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    first = _align(src, dst, "--size", "0").returncode
    r = _align(src, dst, "--size", "112")
    return Outcome(r.returncode, r.stderr, "" if first == 2 else f"--size 0 exited {first}")


@probe("align-integrity", "x.png aligned, then x.jpg added: two crops, x.png's kept", expect=0)
def _(work: Path) -> Outcome:
    from PIL import Image

    src, dst = _three(work), work / "out"
    Image.open(src / "p" / "0.jpg").save(src / "p" / "x.png")
    os.remove(src / "p" / "0.jpg")
    _align(src, dst)
    before = (dst / read_manifest(dst).set_index("path").loc["p/x.png", "output"]).read_bytes()
    Image.open(src / "p" / "1.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(src / "p" / "x.jpg")
    r = _align(src, dst)
    m = read_manifest(dst).set_index("path")
    lost = ("two rows name one crop" if not m.output.is_unique else
            "x.png's crop was overwritten" if (dst / m.loc["p/x.png", "output"]).read_bytes() != before else "")
    c = _check(dst)
    return Outcome(r.returncode, r.stderr + c.stderr, lost or ("--check refuses it" if c.returncode else ""))


RACE = """
import os, sys
import facecore.detection.folder as folder
real, target, other = folder.load_rgb, sys.argv[1], sys.argv[2]
def racing(arg, max_side=1024):  # the photo is rewritten right after the read that is decoded
    img = real(arg, max_side=max_side)
    if not os.path.exists(target + ".done") and (arg == target or arg == open(target, "rb").read()):
        os.replace(other, target)
        open(target + ".done", "w").close()
    return img
folder.load_rgb = racing
sys.exit(folder.main(sys.argv[3:]))
"""


@probe("align-integrity", "a photo rewritten while it is aligned (same size) is redone", expect=0)
def _(work: Path) -> Outcome:
    from PIL import Image

    src, dst = _three(work), work / "out"
    photos = [src / "p" / f"{i}.bmp" for i in range(3)]
    for f in photos:
        Image.open(f.with_suffix(".jpg")).save(f)
        os.remove(f.with_suffix(".jpg"))
    lfw = sorted((data_root() / "lfw" / "lfw-deepfunneled" / "George_W_Bush").glob("*.jpg"))
    Image.open(lfw[3]).save(work / "other.bmp")  # another photo of the same size (LFW: all 250 x 250)
    r0 = run([PY, "-c", RACE, photos[1], work / "other.bmp", src, dst])
    os.remove(str(photos[1]) + ".done")
    r = _align(src, dst)
    (work / "one" / "p").mkdir(parents=True)  # the photo as it is now, aligned alone (as a redo aligns it)
    shutil.copy(photos[1], work / "one" / "p" / "1.bmp")
    _align(work / "one", work / "fresh")
    fresh, m = read_manifest(work / "fresh"), read_manifest(dst)
    stale = (m.src_sha1[1] != file_digest(photos[1], "sha1") or m.x1[1] != fresh.x1[0]
             or (dst / m.output[1]).read_bytes() != (work / "fresh" / fresh.output[0]).read_bytes())
    c = _check(dst)
    return Outcome(max(r0.returncode, r.returncode), r0.stderr + r.stderr + c.stderr,
                   "p/1.bmp's row or crop is the old photo's" if stale else "--check refuses it" if c.returncode else "")


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def _holding(lock: Path) -> subprocess.Popen:
    """A live process holding ``lock`` (as a running alignment does) until its stdin is closed."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([PY, "-c", HOLDER, lock], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


@probe("align-integrity", "a second run while one holds the lock is refused")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    holder = _holding(dst / ".align.lock")
    try:
        r, c = _align(src, dst), _check(dst)
    finally:
        holder.stdin.close()
        holder.wait()
    wrote = [n for n in ("manifest.csv", ".align_journal.csv") if (dst / n).exists()]
    return Outcome(r.returncode, r.stderr, "; ".join(filter(None, [
        f"pid {holder.pid}" not in r.stderr and "the owner's pid is not named",
        c.returncode != 2 and "--check does not refuse a folder being aligned", wrote and f"wrote {wrote}"])))


@probe("align-integrity", "a lock left by an ended run (its pid is dead) is taken over", expect=0)
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    holder = _holding(dst / ".align.lock")
    holder.stdin.close()
    holder.wait()  # as after kill -9: the lock file stays, naming a pid that has ended
    r = _align(src, dst)
    return Outcome(r.returncode, r.stderr, "" if _check(dst).returncode == 0 else "the folder is not complete")


@probe("align-integrity", "two runs at once: each completes or is refused, never a partial manifest", expect=0)
def _(work: Path) -> Outcome:
    src = work / "src"
    for f in sorted((data_root() / "lfw" / "lfw-deepfunneled").glob("A*/*.jpg"))[:40]:
        (src / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, src / f.parent.name / f.name)
    runs = [subprocess.Popen([PY, "-m", "facecore.detection.folder", src, work / "out"], cwd=ROOT, env=ENV, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=900)[1] for p in runs]
    codes = [p.returncode for p in runs]
    odd = [rc for rc, e in zip(codes, errs) if rc != 0 and not (rc == 2 and "being aligned by another run" in e)]
    c = _check(work / "out")
    return Outcome(0 if not odd and 0 in codes else max(codes), "".join(errs) + c.stderr,
                   "--check: " + c.stderr.strip() if c.returncode else "")


@probe("align-integrity", "--check: whole rows cut off the manifest")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    lines = (dst / "manifest.csv").read_text().splitlines(keepends=True)
    (dst / "manifest.csv").write_text("".join(lines[:-1]))
    return Outcome(_check(dst).returncode, _check(dst).stderr)


@probe("align-integrity", "--check: a crop deleted")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    (dst / "p" / "2.jpg").unlink()
    c = _check(dst)
    return Outcome(c.returncode, c.stderr)


@probe("align-integrity", "--check: two rows naming one crop")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    text = (dst / "manifest.csv").read_text()
    (dst / "manifest.csv").write_text(text.replace(",p/2.jpg,ok,", ",p/1.jpg,ok,"))
    c = _check(dst)
    return Outcome(c.returncode, c.stderr)


@probe("align-integrity", "--check: a source added since the last run")
def _(work: Path) -> Outcome:
    src, dst = _three(work), work / "out"
    _align(src, dst)
    shutil.copy(src / "p" / "0.jpg", src / "p" / "3.jpg")
    c = _check(dst)
    return Outcome(c.returncode, c.stderr)


RESULTS = ROOT / "bench" / "results" / "bad_inputs.md"  # the full run's table, spliced into docs/reliability.md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated groups (default: all)")
    ap.add_argument("--markdown", default=None,
                    help=f"write the rows as a markdown table here (default: {RESULTS.relative_to(ROOT)} for a full run)")
    args = ap.parse_args()
    groups = {g for g in args.only.split(",") if g}
    rows = [p for p in PROBES if not groups or p[0] in groups]
    width = max(len(p[0]) for p in rows)
    print(f"{'group':{width}s} {'probe':66s} {'exit':>4s} {'want':>5s} {'traceback':>9s}  lost or stale -> verdict", flush=True)
    failed, table = 0, []
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
        print(f"{group:{width}s} {name[:66]:66s} {o.rc:4d} {'/'.join(map(str, expect)):>5s} {('yes' if tb else 'no'):>9s}  "
              f"{o.lost or 'nothing'} -> {'ok' if ok else 'FAIL'}" + (f"  [{first}]" if first else ""), flush=True)
        table.append(f"| {group} | {name.replace('|', '/')} | {o.rc} | {'/'.join(map(str, expect))} | "
                     f"{'yes' if tb else 'no'} | {(o.lost or 'nothing').replace('|', '/')} | {'ok' if ok else 'FAIL'} |")
    summary = f"{len(rows) - failed} of {len(rows)} rows pass"
    print(summary)
    out = Path(args.markdown) if args.markdown else (None if groups else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, "| group | probe | exit | expected | traceback | lost or stale | verdict |\n"
                          "|---|---|---:|---:|---|---|---|\n" + "\n".join(table) + f"\n\n{summary}.\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

