"""facecore.core.profiles: a profile by name or path, and every malformed shape one line (ProfileError)."""
import pytest

from facecore.core import profiles
from facecore.core.profiles import ProfileError, load_profile, profile_path

NB = "notebooks/ce-loss/ce-loss.ipynb"
BAD = [  # (file text, what the message says)
    ("stages: [\n", "not valid YAML at line 2"), ("stages: [1, 2]\n", "stage 1: must be a mapping"),
    ("- a\n- b\n", "must be a mapping with the one key 'stages'"), ("", "got NoneType"),
    ("stagess: []\n", "got keys ['stagess']"), ("stages: []\n", "'stages' must be a non-empty list"),
    ("stages: {a: 1}\n", "'stages' must be a non-empty list"),
    ("stages:\n  - name: x\n", "stage 1: needs a name and either a notebook or a command"),
    ("stages:\n  - notebook: " + NB + "\n", "needs a name"),
    ("stages:\n  - {name: x, notebook: " + NB + ", command: [ls]}\n", "either a notebook or a command"),
    ("stages:\n  - {name: x, notebook: nope.ipynb}\n", "stage 1 (x): notebook nope.ipynb not found"),
    ("stages:\n  - {name: x, notebook: " + NB + ", params: {}}\n", "unknown key(s) ['params']"),
    ("stages:\n  - {name: x, notebook: " + NB + ", parameters: [1]}\n", "'parameters' must be a dict"),
    ("stages:\n  - {name: x, command: []}\n", "'command' must be a non-empty list"),
    ("stages:\n  - {name: x, command: ls}\n", "'command' must be a list"),
    ("stages:\n  - {name: x, command: [ls]}\n  - {name: x, command: [ls]}\n", "stage 2: the name 'x' is taken"),
]


@pytest.mark.parametrize("text, says", BAD)
def test_malformed_profile_is_one_line_naming_the_file(tmp_path, text, says):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_profile(str(f))
    assert str(e.value).startswith(f"profile {f}") and says in str(e.value) and "\n" not in str(e.value)


def test_name_or_path_by_one_rule(tmp_path, monkeypatch):
    assert profile_path("smoke") == profiles.PROFILES_DIR / "smoke.yaml"
    f = tmp_path / "mine.yml"
    f.write_text("stages:\n  - {name: x, command: [ls]}\n")
    assert profile_path(str(f)) == f
    monkeypatch.chdir(tmp_path)
    assert profile_path("mine.yml") == profiles.Path("mine.yml")  # ends in .yml: a file, relative to here
    assert load_profile("mine.yml")[0]["name"] == "x"
    with pytest.raises(ProfileError, match="unknown profile 'mine'"):
        profile_path("mine")  # no separator, no suffix: a name
    with pytest.raises(ProfileError, match="--profile sub/smoke: no such file"):
        profile_path("sub/smoke")


def test_shipped_profiles_pass():
    for name in profiles.list_profiles():
        assert load_profile(name)
