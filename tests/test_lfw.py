"""facecore.evaluation.lfw: pairs.txt parsing and mapping pairs to embedding rows."""
from __future__ import annotations

import numpy as np
import pytest

from facecore.evaluation import lfw
from conftest import need_data


def _write(tmp_path, text):
    p = tmp_path / "pairs.txt"
    p.write_text(text)
    return p


def test_read_pairs_small_file(tmp_path):
    text = "2\t1\nAbel_Pacheco\t1\t4\nA_B\t1\tC_D\t12\nZico 2 3\nX 3 Y 1\n"
    pairs = lfw.read_pairs(_write(tmp_path, text))
    assert pairs == [
        lfw.LfwPair("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0),
        lfw.LfwPair("A_B/A_B_0001.jpg", "C_D/C_D_0012.jpg", False, 0),
        lfw.LfwPair("Zico/Zico_0002.jpg", "Zico/Zico_0003.jpg", True, 1),
        lfw.LfwPair("X/X_0003.jpg", "Y/Y_0001.jpg", False, 1),
    ]
    assert lfw.read_pairs(_write(tmp_path, text), ext=".png")[0].path1.endswith("_0001.png")


@pytest.mark.parametrize("text, match", [
    ("2 1\nA 1 2\nB 1 C 2\n", "4 lines"),
    ("1 1\nA 1 C 2\nB 1 C 2\n", "line 2"),
    ("ten\n", "first line"),
])
def test_read_pairs_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        lfw.read_pairs(_write(tmp_path, text))


def test_pair_rows_matches_by_identity_and_stem(tmp_path):
    pairs = lfw.read_pairs(_write(tmp_path, "1 1\nA 1 2\nA 1 B 1\n"))
    assert lfw.pair_paths(pairs) == ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg"]
    paths = ["/crops/B/B_0001.png", "/crops/A/A_0001.png"]  # another root and extension; A_0002 missing
    i1, i2, same, fold = lfw.pair_rows(pairs, paths)
    assert i1.tolist() == [1, 1] and i2.tolist() == [-1, 0]
    assert same.tolist() == [True, False] and fold.tolist() == [0, 0]
    emb = np.array([[0.0, 2.0], [1.0, 1.0]])
    s = lfw.pair_similarities(emb, i1, i2)
    assert np.isnan(s[0]) and s[1] == pytest.approx(np.sqrt(0.5))


def test_real_pairs_file():
    path = need_data("lfw", "pairs.txt")
    pairs = lfw.read_pairs(path)
    assert len(pairs) == 6000
    assert sum(p.issame for p in pairs) == 3000
    assert np.bincount([p.fold for p in pairs]).tolist() == [600] * 10
    assert all(p.issame == (p.path1.split("/")[0] == p.path2.split("/")[0]) for p in pairs)
    root = need_data("lfw", "lfw-deepfunneled")
    missing = [p for p in lfw.pair_paths(pairs) if not (root / p).exists()]
    assert not missing, missing[:5]


def test_lfw_eval_is_the_protocol_figures_of_brute_force_embeddings(lfw_dir, tmp_path):
    """validate.lfw_eval (the trainer's per-epoch check) on a 2-fold pairs file: the same figures as
    lfw_accuracy on embeddings computed here crop by crop."""
    import cv2
    import torch

    from facecore.training.data import to_tensor
    from facecore.evaluation.metrics import lfw_accuracy
    from facecore.training.validate import lfw_eval

    names = {"George_W_Bush": 6, "Colin_Powell": 6}
    for name, n in names.items():
        (tmp_path / name).mkdir()
        for i, src in enumerate(sorted((lfw_dir / name).glob("*.jpg"))[:n], start=1):  # renumbered 1..n
            (tmp_path / name / f"{name}_{i:04d}.jpg").write_bytes(src.read_bytes())
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t3\nGeorge_W_Bush\t1\t2\nColin_Powell\t1\t2\nGeorge_W_Bush\t3\t4\n"
                     "George_W_Bush\t1\tColin_Powell\t3\nGeorge_W_Bush\t5\tColin_Powell\t4\nColin_Powell\t5\tGeorge_W_Bush\t6\n"
                     "Colin_Powell\t3\t6\nGeorge_W_Bush\t5\t6\nColin_Powell\t4\t5\n"
                     "George_W_Bush\t2\tColin_Powell\t6\nGeorge_W_Bush\t3\tColin_Powell\t1\nColin_Powell\t2\tGeorge_W_Bush\t4\n")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 8)).eval()
    got = lfw_eval(model, str(tmp_path), 32, pairs_path=str(pairs))

    def emb(name, i):
        img = cv2.resize(cv2.imread(str(tmp_path / name / f"{name}_{i:04d}.jpg")), (112, 112), interpolation=cv2.INTER_AREA)
        with torch.inference_mode():
            return torch.nn.functional.normalize(model(to_tensor(img[None, ..., ::-1].copy(), 32)), dim=1)[0].numpy()

    rows = [ln.split("\t") for ln in pairs.read_text().splitlines()[1:]]
    sims = [float(emb(r[0], int(r[1])) @ (emb(r[0], int(r[2])) if len(r) == 3 else emb(r[2], int(r[3])))) for r in rows]
    ref = lfw_accuracy(np.array(sims), np.array([len(r) == 3 for r in rows]), np.repeat([0, 1], 6))
    assert got["lfw_acc"] == pytest.approx(ref["mean"]) and got["lfw_std"] == pytest.approx(ref["std"])
    assert 0 < got["lfw_spread"] <= 1
