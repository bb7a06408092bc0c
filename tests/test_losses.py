import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facecore.networks.losses import create_loss, list_losses


def _batch(n=12, d=8, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(n, d, generator=g), dim=1).double()
    labels = torch.arange(n) % c
    return emb, labels


def _np_ce(logits, labels):
    logits = logits - logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean()


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="arcface, ce, distill, triplet"):
        create_loss("cosface")
    assert list_losses() == ["arcface", "ce", "distill", "triplet"]


def test_ce_matches_brute_force():
    emb, y = _batch()
    loss = create_loss("ce", embedding_dim=8, num_classes=4, scale=16.0).double()
    w, b = loss.fc.weight.detach().numpy(), loss.fc.bias.detach().numpy()
    expected = _np_ce(16.0 * emb.numpy() @ w.T + b, y.numpy())
    assert float(loss(emb, y)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("margin", [0.0, 0.3, 0.5, 1.2])
def test_arcface_matches_brute_force(margin):
    emb, y = _batch(seed=1)
    loss = create_loss("arcface", embedding_dim=8, num_classes=4, scale=30.0, margin_rad=margin)
    loss.centres.data = torch.randn(4, 8)
    w = loss.centres.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    e = emb.float().numpy().astype(np.float64)
    cos = np.clip(e @ w.T, -1, 1)
    logits = cos.copy()
    for i, c in enumerate(y.numpy()):
        theta = math.acos(cos[i, c])
        logits[i, c] = math.cos(theta + margin) if theta + margin <= math.pi else cos[i, c] - margin * math.sin(margin)
    expected = _np_ce(30.0 * logits, y.numpy())
    assert float(loss(emb.float(), y)) == pytest.approx(expected, rel=1e-4)


def test_arcface_margin_zero_is_scaled_cosine_softmax():
    emb, y = _batch(seed=2)
    loss = create_loss("arcface", embedding_dim=8, num_classes=4, scale=64.0, margin_rad=0.0)
    cos = F.normalize(emb.float(), dim=1) @ F.normalize(loss.centres, dim=1).T
    assert float(loss(emb.float(), y)) == pytest.approx(float(F.cross_entropy(64.0 * cos, y)), rel=1e-5)


def _dist(e):
    return np.linalg.norm(e[:, None] - e[None], axis=2)


def test_batch_hard_triplet_matches_brute_force():
    emb, y = _batch(n=16, c=4, seed=3)
    e, lab = emb.numpy(), y.numpy()
    d = _dist(e)
    terms = []
    for a in range(len(e)):
        pos = [d[a, p] for p in range(len(e)) if p != a and lab[p] == lab[a]]
        neg = [d[a, n] for n in range(len(e)) if lab[n] != lab[a]]
        terms.append(max(max(pos) - min(neg) + 0.3, 0))
    loss = create_loss("triplet", margin=0.3, mining="batch_hard")
    assert float(loss(emb, y)) == pytest.approx(np.mean(terms), rel=1e-6)


def test_semi_hard_triplet_matches_brute_force():
    emb, y = _batch(n=16, c=4, seed=4)
    e, lab = emb.numpy(), y.numpy()
    d = _dist(e)
    terms = []
    for a in range(len(e)):
        for p in range(len(e)):
            if p == a or lab[p] != lab[a]:
                continue
            negs = [d[a, n] for n in range(len(e)) if lab[n] != lab[a]]
            farther = [x for x in negs if x > d[a, p]]
            dn = min(farther) if farther else min(negs)
            terms.append(max(d[a, p] - dn + 0.2, 0))
    loss = create_loss("triplet", margin=0.2, mining="semi_hard")
    assert float(loss(emb, y)) == pytest.approx(np.mean(terms), rel=1e-6)


def test_triplet_without_negatives_is_zero_and_differentiable():
    emb = F.normalize(torch.randn(4, 8), dim=1).requires_grad_()
    out = create_loss("triplet")(emb, torch.zeros(4, dtype=torch.long))
    out.backward()
    assert float(out) == 0.0


def test_arcface_margin_warmup_grows_linearly_and_resumes():
    loss = create_loss("arcface", embedding_dim=8, num_classes=4, margin_rad=0.5, margin_warmup_steps=10)
    emb, y = _batch(seed=5)
    assert loss.current_margin() == 0.0
    for _ in range(5):
        loss(emb.float(), y)
    assert loss.current_margin() == pytest.approx(0.25)
    again = create_loss("arcface", embedding_dim=8, num_classes=4, margin_rad=0.5, margin_warmup_steps=10)
    again.load_state_dict(loss.state_dict())
    assert again.current_margin() == pytest.approx(0.25)
    with torch.no_grad():
        loss(emb.float(), y)  # evaluation does not advance the schedule
    assert loss.current_margin() == pytest.approx(0.25)
    for _ in range(20):
        loss(emb.float(), y)
    assert loss.current_margin() == 0.5


def test_arcface_validation_uses_the_full_margin_during_warmup():
    """Eval-mode losses use the final margin, so min-validation-loss checkpoints are not all epoch 1."""
    loss = create_loss("arcface", embedding_dim=8, num_classes=4, margin_rad=0.5, margin_warmup_steps=10)
    full = create_loss("arcface", embedding_dim=8, num_classes=4, margin_rad=0.5)
    full.load_state_dict(loss.state_dict(), strict=False)
    emb, y = _batch(seed=6)
    loss.eval(), full.eval()
    assert loss.current_margin() == 0.5
    assert torch.equal(loss(emb.float(), y), full(emb.float(), y))
    loss.train()
    assert loss.current_margin() == 0.0


def test_losses_declare_what_training_needs():
    from facecore.networks.losses import build_loss, centres_keys, list_losses, loss_class

    for name in list_losses():
        cls = loss_class(name)
        assert cls.sampler in ("shuffled", "pk") and isinstance(cls.weight_decay, bool)
        loss = build_loss(name, {}, embedding_dim=8, num_classes=5)
        if cls.centres_key is None:
            assert not any(p.shape[:1] == (5,) for p in loss.parameters())
        else:  # the declared key holds one centre per class
            assert loss.state_dict()[cls.centres_key].shape == (5, 8)
    assert centres_keys() == {"fc.weight", "centres", "margin.centres"}
    assert loss_class("triplet").sampler == "pk" and loss_class("ce").sampler == "shuffled"


def test_optimizer_exempts_the_losses_that_ask_from_weight_decay():
    from facecore.networks.losses import build_loss
    from facecore.training.train import TrainConfig, _optimizer

    model = torch.nn.Linear(4, 8)
    for name, decay in [("arcface", 0.0), ("ce", 5e-4)]:
        opt = _optimizer(TrainConfig(), model, build_loss(name, {}, 8, 3))
        assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.param_groups[1]["weight_decay"] == decay


def _distill_reference(loss, e: np.ndarray, ids: np.ndarray, t: np.ndarray) -> float:
    """DistillLoss written out row by row and pair by pair."""
    w = loss.project.weight.detach().double().numpy()
    cos_terms = []
    for i in range(len(e)):
        p = w @ e[i]
        cos_terms.append(1 - p @ t[i] / np.linalg.norm(p) / np.linalg.norm(t[i]))
    total = float(np.mean(cos_terms))
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    sq = [(u[i] @ u[j] - t[i] @ t[j]) ** 2 for i in range(len(e)) for j in range(len(e)) if i != j]
    total += loss.pair_weight * float(np.mean(sq))
    lab = ids >= 0
    if loss.margin_weight > 0 and lab.any():
        total += loss.margin_weight * float(loss.margin(torch.from_numpy(e[lab]).float(), torch.from_numpy(ids[lab])))
    return total


@pytest.mark.parametrize("pair_weight,margin_weight", [(0.0, 0.0), (2.0, 0.0), (0.5, 1.0)])
def test_distill_matches_brute_force(pair_weight, margin_weight):
    from facecore.networks.losses import distill_targets

    torch.manual_seed(0)
    loss = create_loss("distill", embedding_dim=16, num_classes=5, teacher_dim=8, pair_weight=pair_weight,
                       margin_weight=margin_weight)
    e = torch.randn(7, 16)
    ids = torch.tensor([0, 1, -1, 2, -1, 4, 1])
    t = F.normalize(torch.randn(7, 8), dim=1)
    got = float(loss(e, distill_targets(ids, t)))
    assert got == pytest.approx(_distill_reference(loss, e.double().numpy(), ids.numpy(), t.double().numpy()), rel=1e-4)


def test_distill_of_unlabelled_faces_only_and_bad_labels():
    from facecore.networks.losses import distill_targets

    loss = create_loss("distill", embedding_dim=16, num_classes=5, teacher_dim=8)
    e = torch.randn(4, 16, requires_grad=True)
    t = F.normalize(torch.randn(4, 8), dim=1)
    out = loss(e, distill_targets(torch.full((4,), -1), t))  # no labelled face: the margin term drops out
    out.backward()
    assert torch.isfinite(out) and e.grad.abs().sum() > 0 and loss.margin.centres.grad is None
    with pytest.raises(ValueError, match=r"labels must be \(N, 1 \+ 8\)"):
        loss(e, torch.zeros(4, dtype=torch.long))


def test_pairwise_distances_match_brute_force_with_zero_on_duplicates():
    from facecore.networks.losses import pairwise_distances

    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(40, 16), dim=1)
    e = torch.cat([e, e[:3]])  # duplicates: distance exactly 0, finite gradient
    e.requires_grad_(True)
    d = pairwise_distances(e)
    ref = [[float(((e[i] - e[j]) ** 2).sum().sqrt()) for j in range(len(e))] for i in range(len(e))]
    torch.testing.assert_close(d.detach(), torch.tensor(ref), atol=1e-3, rtol=0)
    assert (d.diagonal() == 0).all() and (d[40:43, :3].diagonal() < 1e-3).all()
    d.sum().backward()
    assert torch.isfinite(e.grad).all()
