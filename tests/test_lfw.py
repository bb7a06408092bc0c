"""facecore.lfw: pairs.txt parsing and mapping pairs to embedding rows."""
from __future__ import annotations

import numpy as np
import pytest

from facecore import lfw
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
