"""facecore.core.checkpoint: every checkpoint read is checked (meta and weights), none is written with NaN weights."""
import math

import pytest
import torch

from facecore.core.checkpoint import check_meta, check_weights, checkpoint_meta, read_checkpoint, write_checkpoint

NAN, INF = math.nan, math.inf


def _meta(**change):
    meta = checkpoint_meta("efficientnet-b0", 512, 64)
    meta.update(change)
    return {k: v for k, v in meta.items() if v is not _DROP}


_DROP = object()
BAD_META = [  # (change, what the message says)
    ({"arch": _DROP}, "no backbone name"), ({"arch": ""}, "no backbone name"), ({"arch": 3}, "no backbone name"),
    ({"input_size": 0}, "'input_size' = 0 must be in [8, 4096]"), ({"input_size": -64}, "'input_size'"),
    ({"input_size": 64.5}, "'input_size' must be an integer"), ({"input_size": _DROP}, "'input_size' must be an integer"),
    ({"embedding_dim": 0}, "'embedding_dim' = 0"), ({"embedding_dim": True}, "'embedding_dim' must be an integer"),
    ({"align_size": 0}, "'align_size'"), ({"mean": [0.5]}, "'mean' must be 3 finite numbers"),
    ({"mean": [0.5, NAN, 0.5]}, "'mean' must be 3 finite numbers"), ({"std": [0, 0, 0]}, "'std' must be positive"),
    ({"std": [0.5, -0.5, 0.5]}, "'std' must be positive"), ({"std": "0.5"}, "'std' must be 3"),
    ({"threshold": NAN, "threshold_fpr": 0.01}, "threshold at FPR 0.01 nan: must be a cosine similarity"),
    ({"threshold": 7.5}, "threshold 7.5: must be a cosine similarity"), ({"threshold": -INF}, "must be a cosine"),
    ({"threshold": "0.4"}, "must be a cosine"), ({"threshold": 0.4, "threshold_fpr": 0.0}, "FPR 0.0 must be in (0, 1]"),
    ({"threshold": 0.4, "threshold_fpr": NAN}, "FPR nan must be in (0, 1]"),
    ({"thresholds_by_fpr": {"0.01": 7.5}}, "threshold at FPR 0.01 7.5"),
    ({"thresholds_by_fpr": {"x": 0.4}}, "FPR 'x' is not a number"), ({"thresholds_by_fpr": [0.4]}, "must be a dict"),
    ({"backbone": {"threshold": NAN}}, "backbone threshold nan"), ({"head": {"kind": "linear"}}, "'head' must name"),
]
GOOD_META = [{}, {"threshold": 0.4, "threshold_fpr": 0.001}, {"thresholds_by_fpr": {"0.001": 0.5, "0.1": -0.2}},
             {"threshold": -1.0}, {"threshold": 1}, {"threshold": None}, {"align_size": _DROP}, {"mean": (0, 0, 0)},
             {"head": {"kind": "linear", "in_dim": 512, "out_dim": 128}, "backbone": {"threshold": 0.3}},
             {"input_size": 8}, {"arch": "my-own-backbone"}]


@pytest.mark.parametrize("change", GOOD_META)
def test_good_meta_passes(change):
    check_meta(_meta(**change), "m.pt")


@pytest.mark.parametrize("change, says", BAD_META)
def test_bad_meta_is_one_line_naming_the_file(change, says):
    with pytest.raises(ValueError) as e:
        check_meta(_meta(**change), "m.pt")
    assert str(e.value).startswith("m.pt: meta ") and says in str(e.value) and "\n" not in str(e.value)


def test_arch_is_checked_against_a_registry_when_given():
    check_meta(_meta(), "m.pt", ["efficientnet-b0"])
    with pytest.raises(ValueError, match="'arch' 'efficientnet-b0' is no known backbone"):
        check_meta(_meta(), "m.pt", ["inceptionresnetv1"])


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_weights_with_nan_or_inf_are_refused(bad, dtype):
    sd = {"a.weight": torch.ones(3, dtype=dtype), "b.weight": torch.ones(2, 2, dtype=dtype),
          "n": torch.tensor(7), "b.num_batches_tracked": torch.tensor(3)}
    check_weights(sd, "w.pt")
    sd["b.weight"][1, 0] = bad
    with pytest.raises(ValueError, match=r"^w.pt: 1 weight tensor\(s\) hold NaN or infinite values \(first: b.weight\)"):
        check_weights(sd, "w.pt")


def test_read_checkpoint_checks_meta_and_weights(tmp_path):
    """The root every reader goes through (load_embedder, warm_start, load_last, export, set_thresholds)."""
    blob = {"meta": _meta(), "state_dict": {"w": torch.ones(4)}}
    write_checkpoint(tmp_path / "ok.pt", blob)
    assert read_checkpoint(tmp_path / "ok.pt")["meta"]["input_size"] == 64
    torch.save({"meta": _meta(input_size=0), "state_dict": {"w": torch.ones(4)}}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match="meta.pt: meta 'input_size' = 0"):
        read_checkpoint(tmp_path / "meta.pt")
    torch.save({"meta": _meta(), "state_dict": {"w": torch.full((4,), NAN)}}, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="nan.pt: 1 weight tensor"):
        read_checkpoint(tmp_path / "nan.pt")
    torch.save({"meta": _meta(), "state_dict": {}, "loss_state": {"centres": torch.full((2, 2), INF)}},
               tmp_path / "loss.pt")
    with pytest.raises(ValueError, match="loss.pt: 1 weight tensor"):
        read_checkpoint(tmp_path / "loss.pt")


def test_nan_weights_are_never_written_over_a_good_file(tmp_path):
    good = {"meta": _meta(), "state_dict": {"w": torch.ones(4)}}
    write_checkpoint(tmp_path / "last.pt", good)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="last.pt: 1 weight tensor"):
        write_checkpoint(tmp_path / "last.pt", {**good, "state_dict": {"w": torch.full((4,), NAN)}})
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def _real(tmp_path, name, **change):
    from facecore.networks.models import create_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / name, create_model("efficientnet-b0", embedding_dim=16), _meta(embedding_dim=16))
    blob = read_checkpoint(tmp_path / name)
    blob["meta"].update(change)
    torch.save(blob, tmp_path / name)
    return tmp_path / name


def test_load_embedder_refuses_unknown_arch_and_too_small_input(tmp_path):
    from facecore.networks.models import load_embedder

    assert load_embedder(_real(tmp_path, "ok.pt")).input_size == 64
    with pytest.raises(ValueError, match="arch.pt: meta 'arch' 'resnet9000' is no known backbone"):
        load_embedder(_real(tmp_path, "arch.pt", arch="resnet9000"))
    with pytest.raises(ValueError, match="small.pt: meta 'input_size' = 16 is below the smallest input"):
        load_embedder(_real(tmp_path, "small.pt", input_size=16))


def test_recognizer_load_model_turns_a_stored_nan_threshold_into_a_model_choice_error(tmp_path):
    """The realtime.py entry point: ModelChoiceError (exit 2 there), naming the file."""
    from facecore.recognition.recognizer import ModelChoiceError, load_model

    path = _real(tmp_path, "thr.pt", threshold=NAN, threshold_fpr=0.01)
    with pytest.raises(ModelChoiceError, match="thr.pt: meta threshold at FPR 0.01 nan: must be a cosine"):
        load_model(checkpoint=path)
