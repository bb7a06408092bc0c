import pytest
import torch

from facecore.networks.losses import create_loss
from facecore.networks.models import checkpoint_meta, create_model, save_checkpoint
from facecore.training.warmstart import warm_start

CLASSES = ["a", "b", "c"]


@pytest.fixture
def ce_run(tmp_path):
    """A CE run's last.pt: backbone plus a classifier over CLASSES."""
    torch.manual_seed(1)
    model = create_model("efficientnet-b0", embedding_dim=32)
    ce = create_loss("ce", embedding_dim=32, num_classes=3)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, checkpoint_meta("efficientnet-b0", 32, 64, CLASSES),
                    extra={"loss_state": ce.state_dict()})
    return path, model, ce


def test_backbone_and_centres_come_from_the_checkpoint(ce_run):
    path, src_model, ce = ce_run
    torch.manual_seed(2)
    model = create_model("efficientnet-b0", embedding_dim=32)
    arc = create_loss("arcface", embedding_dim=32, num_classes=3)
    note = warm_start(model, arc, path, "efficientnet-b0", 32, CLASSES)
    assert "class centres" in note and "fresh" not in note
    for (k, a), b in zip(model.state_dict().items(), src_model.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(arc.centres.data, ce.fc.weight.data)


def test_other_classes_keep_fresh_centres(ce_run):
    path, _, ce = ce_run
    arc = create_loss("arcface", embedding_dim=32, num_classes=3)
    before = arc.centres.detach().clone()
    note = warm_start(create_model("efficientnet-b0", embedding_dim=32), arc, path, "efficientnet-b0", 32, ["x", "y", "z"])
    assert "start fresh" in note
    assert torch.equal(arc.centres.data, before)


def test_triplet_takes_the_backbone_only(ce_run):
    path, _, _ = ce_run
    note = warm_start(create_model("efficientnet-b0", embedding_dim=32), create_loss("triplet"), path,
                      "efficientnet-b0", 32, CLASSES)
    assert "no class centres" in note


def test_mismatched_architecture_is_refused(ce_run):
    path, _, _ = ce_run
    with pytest.raises(ValueError, match="efficientnet-b0 with 32-d"):
        warm_start(create_model("efficientnet-b0", embedding_dim=64), create_loss("triplet"), path,
                   "efficientnet-b0", 64, CLASSES)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        warm_start(create_model("efficientnet-b0", embedding_dim=32), create_loss("triplet"), tmp_path / "nope.pt",
                   "efficientnet-b0", 32, CLASSES)


def test_distillation_continues_with_its_learnt_map(tmp_path):
    torch.manual_seed(3)
    model = create_model("efficientnet-b0", embedding_dim=32)
    src = create_loss("distill", embedding_dim=32, num_classes=3, teacher_dim=8)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, checkpoint_meta("efficientnet-b0", 32, 64, CLASSES), extra={"loss_state": src.state_dict()})
    fresh = create_loss("distill", embedding_dim=32, num_classes=3, teacher_dim=8)
    assert not torch.equal(fresh.project.weight, src.project.weight)
    note = warm_start(create_model("efficientnet-b0", embedding_dim=32), fresh, path, "efficientnet-b0", 32, CLASSES)
    assert "project.weight" in note
    assert torch.equal(fresh.project.weight, src.project.weight)
    other = create_loss("distill", embedding_dim=32, num_classes=3, teacher_dim=16)  # another teacher's size: fresh map
    before = other.project.weight.detach().clone()
    assert "project" not in warm_start(create_model("efficientnet-b0", embedding_dim=32), other, path, "efficientnet-b0", 32, CLASSES)
    assert torch.equal(other.project.weight, before)
