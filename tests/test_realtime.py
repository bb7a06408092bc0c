"""realtime.py end to end on the demo clip, its bad-input errors, and the tracking pipeline."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, need_data
from facecore.networks.models import checkpoint_meta, create_model, save_checkpoint
from facecore.recognition.tracking import iou_matrix

CLIP = ("demo", "short_hamilton_clip.mp4")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "b0.pt"
    save_checkpoint(path, create_model("efficientnet-b0"), checkpoint_meta("efficientnet-b0", 512, 64))
    return path


@pytest.fixture(scope="module")
def clip_gallery(tmp_path_factory) -> Path:
    """A gallery of one person whose photo is frame 5 of the clip itself (the test's own data)."""
    from PIL import Image

    from facecore.recognition.video import open_source

    src = open_source(need_data(*CLIP))
    frame = next(f for i, f in enumerate(src) if i == 5)
    src.close()
    root = tmp_path_factory.mktemp("people")
    Image.fromarray(frame).save(root / "Clip_Person.png")
    return root


def realtime(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "realtime.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_clip_to_gif_with_labels(tmp_path, checkpoint, clip_gallery):
    clip = need_data(*CLIP)
    gif, report = tmp_path / "out.gif", tmp_path / "report.json"
    # threshold -1: every face is as similar as it can be to the one enrolled person, whatever the model
    r = realtime("--checkpoint", checkpoint, "--source", clip, "--people_faces", clip_gallery, "--max_frames", 30,
                 "--no-display", "--output_path", gif, "--report_json", report, "--threshold", -1,
                 "--cache_dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    from PIL import Image

    with Image.open(gif) as im:
        # 30 frames at 29.97 fps span 0.97 s: one GIF frame per started 0.1 s, 320 px wide
        assert (im.n_frames, im.size, im.info["duration"]) == (10, (320, 180), 100)
    rep = json.loads(report.read_text())
    assert rep["frames_processed"] == 30 and [f["index"] for f in rep["frames"]] == list(range(30))
    names = Counter(face["name"] for f in rep["frames"] for face in f["faces"])
    assert set(names) == {"Clip_Person"} and names["Clip_Person"] >= 30  # the singer is in every frame
    assert rep["face_frames"] == dict(names)
    assert f"Clip_Person: {names['Clip_Person']}" in r.stdout
    assert all(len(face["box"]) == 4 for f in rep["frames"] for face in f["faces"])


def test_empty_gallery_mp4_everyone_unknown(tmp_path, checkpoint):
    clip = need_data(*CLIP)
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "README.md").write_text("no photos")
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    r = realtime("--checkpoint", checkpoint, "--source", clip, "--people_faces", tmp_path / "people", "--max_frames", 5,
                 "--no-display", "--output_path", out, "--report_json", report, "--threshold", -1,
                 "--cache_dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "every face will be labelled Unknown" in r.stderr
    rep = json.loads(report.read_text())
    assert set(face["name"] for f in rep["frames"] for face in f["faces"]) == {"Unknown"}
    import imageio.v3 as iio

    assert iio.imread(out, index=None).shape == (5, 360, 640, 3)


@pytest.mark.parametrize("case", ["camera", "missing_video", "unreadable_video", "output_folder", "model_name"])
def test_bad_input_one_line_exit_2(tmp_path, checkpoint, case):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    clip = need_data(*CLIP)
    args, expect = {
        "camera": (["--checkpoint", checkpoint, "--cam", 99], "camera 99"),
        "missing_video": (["--checkpoint", checkpoint, "--source", tmp_path / "nope.mp4"], "nope.mp4"),
        "unreadable_video": (["--checkpoint", checkpoint, "--source", broken], "broken.mp4"),
        "output_folder": (["--checkpoint", checkpoint, "--source", clip, "--output_path", tmp_path / "no" / "x.gif"],
                          "does not exist"),
        "model_name": (["--model_name", "no_such_model", "--source", clip], "no_such_model"),
    }[case]
    r = realtime(*args, "--no-display", "--report_json", tmp_path / "r.json")  # an output: the run is meant
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("realtime.py: error:") and expect in lines[0], r.stderr


def test_tracking_pipeline_finds_the_faces_of_the_full_frame_loop(checkpoint):
    """Our pipeline (reduced frames, tracking) reports the faces the straightforward loop finds."""
    from facecore.detection.detect import FaceDetector
    from facecore.recognition.gallery import Gallery
    from facecore.networks.models import load_embedder
    from facecore.recognition.recognize import Recognizer, agreement, recognize_frame
    from facecore.recognition.video import open_source

    emb = load_embedder(checkpoint)
    src = open_source(need_data(*CLIP))
    frames = [f for _, f in zip(range(30), src)]
    src.close()
    gallery = Gallery(["x"], np.eye(1, 512, dtype=np.float32))
    rec = Recognizer(emb, gallery, -1.0)
    ours = [rec.process(f) for f in frames]
    det = FaceDetector()
    ref = [recognize_frame(f, det, emb, gallery, -1.0) for f in frames]
    a = agreement(ours, ref)
    assert a["face_frames"] >= 30 and a["paired"] >= 0.9 * a["face_frames"], a
    assert rec.counts["detections"] < 15 and rec.counts["embedded_faces"] < sum(map(len, ref)) / 3
    assert rec.counts["cuts"] == 1  # the shot changes at frame 20


def test_detects_every_search_every_frames_while_nobody_is_tracked(checkpoint):
    from facecore.recognition.gallery import Gallery
    from facecore.networks.models import load_embedder
    from facecore.recognition.recognize import Recognizer, RecognizerConfig

    emb = load_embedder(checkpoint)
    gallery = Gallery([], np.zeros((0, 512), np.float32))
    empty = np.random.default_rng(0).integers(100, 110, (180, 320, 3), dtype=np.uint8)  # no face, no cut
    for search_every, expected in ((1, 7), (3, 3)):  # frames 0..6: all of them / 0, 3, 6
        rec = Recognizer(emb, gallery, 0.5, RecognizerConfig(search_every=search_every))
        assert all(rec.process(empty) == [] for _ in range(7))
        assert rec.counts["detections"] == expected and rec.counts["cuts"] == 0


def test_output_slots_match_a_brute_force_count(tmp_path):
    from facecore.recognition.video_out import OutputWriter
    from facecore.recognition.video_out import OutputWriter

    w = OutputWriter(tmp_path / "x.gif", fps=10)
    fps = 30000 / 1001
    chosen = [i for i in range(100) if w.wants(i / fps)]
    # brute force: the first frame whose time reaches each multiple of 0.1 s
    ref = [min(i for i in range(100) if i / fps >= k / 10 - 1e-9) for k in range(100) if k / 10 <= 99 / fps]
    assert chosen == ref
    w.close(keep=False)
    assert not list(tmp_path.iterdir())


def test_agreement_and_label_changes_on_known_frames():
    from facecore.recognition.recognize import FaceResult, agreement, label_changes

    def face(x: float, name: str) -> FaceResult:
        return FaceResult(np.array([x, 0, x + 10, 10.0]), np.zeros((5, 2)), name, 0.5)

    ref = [[face(0, "A"), face(50, "B")], [face(1, "A"), face(51, "A")], [face(2, "A")]]
    ours = [[face(1, "A"), face(49, "B")], [face(0, "A"), face(30, "B")], [face(2, "U"), face(80, "C")]]
    # frame 0: 2 of 2 agree; frame 1: A agrees, the face at 51 is unpaired; frame 2: paired, wrong name
    assert agreement(ours, ref) == {"face_frames": 5, "paired": 4, "agree": 3, "extra": 2, "agreement": 0.6}
    assert label_changes(ref) == {"pairs": 3, "changes": 1, "rate": pytest.approx(1 / 3)}


def test_default_data_paths_follow_facecore_data(monkeypatch, tmp_path):
    from facecore.recognition.recognizer import input_path

    monkeypatch.setenv("FACECORE_DATA", str(tmp_path))
    assert input_path("../shared/data/demo/x.mp4") == tmp_path / "demo" / "x.mp4"
    assert input_path("elsewhere/x.mp4") == Path("elsewhere/x.mp4")


def test_threshold_comes_from_the_checkpoints_fpr_table(tmp_path):
    from facecore.recognition import realtime as rt

    meta = checkpoint_meta("efficientnet-b0", 512, 64)
    assert rt.REALTIME_FPR == 0.01
    meta.update(threshold=0.8, threshold_fpr=0.001, thresholds_by_fpr={"0.001": 0.8, "0.01": 0.7, "0.03": 0.6})
    path = tmp_path / "t.pt"
    save_checkpoint(path, create_model("efficientnet-b0"), meta)
    load = lambda *a: rt.load_model(rt.parse_args(["--checkpoint", str(path), *a]))[1:]  # noqa: E731
    assert load() == (0.7, "checkpoint, calibrated on LFW at FPR 0.01")  # the default --fpr
    assert load("--fpr", "0.001")[0] == 0.8 and load("--fpr", "0.03")[0] == 0.6
    assert load("--fpr", "0.001", "--threshold", "0.5") == (0.5, "--threshold")
    with pytest.raises(rt.UsageError, match=r"--fpr 0.2: t.pt stores thresholds for FPR 0.001, 0.01, 0.03"):
        load("--fpr", "0.2")


def test_default_model_names_the_performer_and_no_one_else(tmp_path):
    """The shipped default model, its default threshold and the demo gallery on the whole clip: the
    performer is named in his close-ups (frames 82-210: the clip cuts hard at frames 20, 45, 82 and 211,
    checked on the frames) and may be in his distant opening shot (frames 0-19, right half). The pianist
    at the left of that shot is Alex Lacamoire (the enrolled photo: same curly hair, beard, grey jacket
    and blue shirt), as is the curly-haired profile close-up of frames 20-44 (same hair and shirt; the
    performer's hair is short): he may be named there, and only as himself; the four audience faces of
    the last shot (frames 211-274) are never named."""
    clip = need_data(*CLIP)
    people = need_data("demo", "people_faces")
    report = tmp_path / "r.json"
    r = realtime("--source", clip, "--people_faces", people, "--no-display", "--output_path", tmp_path / "o.gif",
                 "--report_json", report, "--cache_dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    frames = json.loads(report.read_text())["frames"]
    assert len(frames) == 275
    named = [(fr["index"], f) for fr in frames for f in fr["faces"] if f["name"] != "Unknown"]
    lin = [(i, f) for i, f in named if f["name"] == "Lin_Manuel_Miranda"]
    alex = [(i, f) for i, f in named if f["name"] == "Alex_Lacamoire"]
    assert len(lin) >= 90 and len(lin) + len(alex) == len(named)
    # the performer: his close-ups (frames 82-210) and the right half of the opening shot; the pianist:
    # the left half of the opening shot and his profile close-up; never one as the other, nor anyone else
    centre_x = lambda f: (f["box"][0] + f["box"][2]) / 2  # noqa: E731
    assert all(82 <= i <= 210 or (i < 20 and centre_x(f) > 320) for i, f in lin)
    assert all((i < 20 and centre_x(f) < 320) or 20 <= i < 45 for i, f in alex)
    audience = [fr["faces"] for fr in frames if fr["index"] >= 211]
    assert sum(len(faces) >= 3 for faces in audience) >= 0.8 * len(audience)  # the audience faces are seen ...
    assert all(f["name"] == "Unknown" for faces in audience for f in faces)  # ... and nobody there is named
    # faces only: no box sits on a detection hand-labelled hair, hand, jaw or background
    # (bench/experiments/demo_detection_labels.csv; MTCNN's 0.7 threshold alone boxed 29 of them)
    spec = importlib.util.spec_from_file_location("detection_filter", ROOT / "bench" / "experiments" / "detection_filter.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    labels = bench.read_labels()
    on_non_faces = []
    for fr in frames:
        lab = labels.get(fr["index"], [])
        for f in fr["faces"]:
            ious = iou_matrix(np.array([f["box"]], np.float64), np.array([b for b, _ in lab]).reshape(-1, 4))[0]
            if len(lab) and ious.max() >= 0.3 and lab[int(ious.argmax())][1] == "not_face":
                on_non_faces.append(fr["index"])
    assert on_non_faces == []


@pytest.mark.parametrize("case", ["output_is_folder", "output_unwritable", "report_is_folder", "report_unwritable",
                                  "cache_is_file", "threshold_nan", "threshold_inf", "threshold_range",
                                  "nothing_to_do", "min_score_range", "min_rel_side_nan"])
def test_outputs_and_threshold_refused_before_loading(tmp_path, case):
    """Checked before the model, the camera or the video is touched: a bogus checkpoint and camera 99
    would fail later with another message."""
    (tmp_path / "folder.gif").mkdir()
    (tmp_path / "cache_file").write_text("x")
    ok_out = ["--output_path", tmp_path / "o.gif"]
    args, expect = {
        "output_is_folder": (["--output_path", tmp_path / "folder.gif"], "is a folder"),
        "output_unwritable": (["--output_path", "/proc/o.gif"], "cannot write"),
        "report_is_folder": (ok_out + ["--report_json", tmp_path], "is a folder"),
        "report_unwritable": (ok_out + ["--report_json", "/proc/r.json"], "cannot write"),
        "cache_is_file": (ok_out + ["--cache_dir", tmp_path / "cache_file"], "is a file"),
        "threshold_nan": (ok_out + ["--threshold", "nan"], "--threshold nan"),
        "threshold_inf": (ok_out + ["--threshold", "inf"], "--threshold inf"),
        "threshold_range": (ok_out + ["--threshold", "1.5"], "[-1, 1]"),
        "nothing_to_do": ([], "--output_path"),
        "min_score_range": (ok_out + ["--min_score", "1.5"], "--min_score 1.5: must be between 0 and 1"),
        "min_rel_side_nan": (ok_out + ["--min_rel_side", "nan"], "--min_rel_side nan"),
    }[case]
    r = realtime("--checkpoint", tmp_path / "no.pt", "--cam", 99, "--no-display", *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and expect in lines[0], r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no probe file left


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_writes_outputs_and_leaves_no_temporary_file(tmp_path, checkpoint, clip_gallery, sig):
    import signal
    import time

    clip = need_data(*CLIP)
    gif, report = tmp_path / "out.gif", tmp_path / "report.json"
    p = subprocess.Popen([sys.executable, str(ROOT / "realtime.py"), "--checkpoint", checkpoint, "--source", clip,
                          "--people_faces", clip_gallery, "--no-display", "--output_path", gif, "--report_json",
                          report, "--threshold", "-1", "--cache_dir", tmp_path / "cache"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("source:")  # the frame loop starts now
    time.sleep(3)
    p.send_signal(getattr(signal, sig))
    time.sleep(0.05)
    p.send_signal(getattr(signal, sig))  # a second one while the outputs are written
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "Traceback" not in err, (out, err)
    rep = json.loads(report.read_text())
    assert rep["stopped_by"] == sig and 0 < rep["frames_processed"] < 275
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == rep["output"]["frames"] >= 1
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cache", "out.gif", "report.json"]


def test_recognizer_from_name_resolves_model_and_threshold(tmp_path, checkpoint, clip_gallery):
    from facecore.recognition.recognize import Recognizer
    from facecore.recognition.recognizer import ModelChoiceError

    with pytest.raises(ModelChoiceError, match="unknown model name 'nope'; valid names: .*ce-inceptionresnetv1-min10"):
        Recognizer.from_name(model_name="nope", people_faces=clip_gallery)
    with pytest.raises(ModelChoiceError, match=r"^threshold=nan: must be a cosine"):  # the parameter, not the flag
        Recognizer.from_name(checkpoint=checkpoint, people_faces=clip_gallery, threshold=float("nan"))
    with pytest.warns(UserWarning, match="no calibrated threshold"):
        rec = Recognizer.from_name(checkpoint=checkpoint, people_faces=clip_gallery, cache_dir=tmp_path / "c")
    assert (rec.threshold, rec.threshold_origin) == (0.4, "fallback") and rec.gallery.names == ["Clip_Person"]
    assert rec.detector.settings["pad_frac"] == 0.0  # video frames: no padded retry
    rec2 = Recognizer.from_name(checkpoint=checkpoint, people_faces=clip_gallery, threshold=0.3, cache_dir=tmp_path / "c")
    assert (rec2.threshold, rec2.threshold_origin) == (0.3, "--threshold")
    np.testing.assert_array_equal(rec2.gallery.embeddings, rec.gallery.embeddings)


def _run_limited(args: list, file_limit_bytes: int) -> subprocess.CompletedProcess:
    """realtime.py as a user runs it under ``ulimit -f``: files may not grow past the limit."""
    import os
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit_bytes, file_limit_bytes))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # Python's own .pyc writes would hit the limit first
    return subprocess.run([sys.executable, str(ROOT / "realtime.py"), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=limit)


@pytest.mark.parametrize("target, limit", [("o.gif", 8192), ("o.mp4", 8192), ("r.json", 1024)])
def test_disk_full_is_one_line_exit_2_and_leaves_nothing_behind(tmp_path, checkpoint, target, limit):
    clip = need_data(*CLIP)
    people, out = tmp_path / "people", tmp_path / "out"
    people.mkdir()
    out.mkdir()
    (out / "o.gif").write_bytes(b"an older run's gif")
    outputs = ["--report_json", out / "r.json"] + ([] if target == "r.json" else ["-o", out / target])
    r = _run_limited(["--checkpoint", checkpoint, "--source", clip, "--people_faces", people, "--max_frames", 10,
                      "--no-display", "--no-progress", "--threshold", -1, "--cache_dir", tmp_path / "cache", *outputs],
                     limit)
    errors = [line for line in r.stderr.strip().splitlines() if not line.startswith("warning:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert errors[0].startswith("realtime.py: error:") and str(out / target) in errors[0] and "Traceback" not in r.stderr
    assert "wrote" not in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["o.gif"]  # no temporary file, no report, no partial video
    assert (out / "o.gif").read_bytes() == b"an older run's gif"
    if target == "o.gif":
        assert "from an earlier run, left as it was" in errors[0]


def test_no_frame_is_an_error_and_nothing_is_written(tmp_path, checkpoint):
    frames, people = tmp_path / "frames", tmp_path / "people"
    frames.mkdir()
    people.mkdir()
    (frames / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "o.gif").write_bytes(b"an older run's gif")
    r = realtime("--checkpoint", checkpoint, "--source", frames, "--people_faces", people, "--no-display", "-o",
                 tmp_path / "o.gif", "--report_json", tmp_path / "r.json", "--cache_dir", tmp_path / "cache")
    errors = [line for line in r.stderr.strip().splitlines() if line.startswith("realtime.py")]
    assert r.returncode == 2 and len(errors) == 1 and "no frame could be read" in errors[0], r.stderr
    assert "wrote" not in r.stdout and "Traceback" not in r.stderr
    assert (tmp_path / "o.gif").read_bytes() == b"an older run's gif" and not (tmp_path / "r.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_video_cut_mid_stream_says_how_many_frames_it_gave(tmp_path):
    """The demo clip with its index first (faststart), cut in half: 130 of 275 frames decode."""
    from imageio_ffmpeg import get_ffmpeg_exe

    from facecore.recognition.video import open_source

    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    subprocess.run([get_ffmpeg_exe(), "-v", "error", "-i", need_data(*CLIP), "-c", "copy", "-movflags", "+faststart",
                    whole], check=True)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    src = open_source(cut)
    n = sum(1 for _ in src)
    src.close()
    assert src.frames_expected == 275 and 0 < n == src.frames_read < 275
    assert src.shortfall() == (f"video {cut}: read {n} of the 275 frames its header promises (damaged or truncated "
                               f"file); the rest is missing from the outputs")
    src = open_source(whole)
    assert sum(1 for _ in src) == 275 and src.shortfall() is None


def test_short_output_flag_and_library_errors_in_flag_words():
    from facecore.recognition.realtime import flag_message, parse_args

    assert parse_args(["-o", "x.gif"]).output_path == parse_args(["--output_path", "x.gif"]).output_path == "x.gif"
    flags = {"output_path", "people_faces", "threshold"}
    assert flag_message("output_path x.txt: use a .gif or .mp4 file name", flags) == \
        "--output_path x.txt: use a .gif or .mp4 file name"
    assert flag_message("people_faces: no such folder", flags) == "--people_faces: no such folder"
    assert flag_message("--threshold nan: must be ...", flags) == "--threshold nan: must be ..."  # already a flag
    assert flag_message("model 'x': checkpoint missing", flags) == "model 'x': checkpoint missing"  # not a flag
    assert flag_message("output_pathology: x", flags) == "output_pathology: x"
    assert "burn_fps" in __import__("facecore.recognition.realtime", fromlist=["_flags"])._flags()
