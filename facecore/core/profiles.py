"""Pipeline profiles: find one by name or path, read it, and check its shape before anything runs.

``--profile`` takes a name of ``notebooks/profiles/<name>.yaml`` or a file: a value that contains a path
separator or ends in ``.yaml``/``.yml`` is a file path (``--profile ./mine.yaml``), anything else a name.
A profile is a mapping with one key, ``stages``: a list of mappings, each with a ``name`` and either a
``notebook`` (a file of the project) or a ``command`` (a list of words), and optionally ``parameters``
(a mapping), ``requires`` (a list of paths under the data root) and ``kernel``. Anything else raises
``ProfileError`` (a ValueError) with one line naming the file and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path

from .paths import PROJECT_ROOT, data_root, work_root

PROFILES_DIR = PROJECT_ROOT / "notebooks" / "profiles"
STAGE_KEYS = {"name": str, "notebook": str, "command": list, "parameters": dict, "requires": list, "kernel": str}


class ProfileError(ValueError):
    """A profile that cannot be found or read, or whose shape is wrong (one line)."""


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_path(profile: str) -> Path:
    """The file of ``profile``: a path when it contains a separator or ends in .yaml/.yml, else a name
    under ``notebooks/profiles/``."""
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if any(s in profile for s in seps) or profile.endswith((".yaml", ".yml")):
        path = Path(profile).expanduser()
        if not path.is_file():
            raise ProfileError(f"--profile {profile}: no such file (a value with a path separator or ending in "
                               f".yaml is a file; a name is one of {', '.join(list_profiles())})")
        return path
    path = PROFILES_DIR / f"{profile}.yaml"
    if not profile or not path.is_file():
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(list_profiles())} "
                           f"(or a file: --profile path/to/profile.yaml)")
    return path


def profile_name(profile: str) -> str:
    """The name of a profile's run folder ``runs/<name>``: the file's stem for a path."""
    return profile_path(profile).stem


def read_profile(path: Path) -> list[dict]:
    """The checked stages of a profile file, as written (no substitution)."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"profile {path}: cannot be read ({e})") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ProfileError(f"profile {path}: not valid YAML{at} ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(spec, dict) or set(spec) - {"stages"}:
        got = type(spec).__name__ if not isinstance(spec, dict) else f"keys {sorted(set(spec) - {'stages'})}"
        raise ProfileError(f"profile {path}: must be a mapping with the one key 'stages' (a list of stages), got {got}")
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ProfileError(f"profile {path}: 'stages' must be a non-empty list of stages, got {stages!r}")
    names = set()
    for i, s in enumerate(stages, 1):
        _check_stage(path, i, s)
        if s["name"] in names:
            raise ProfileError(f"profile {path}: stage {i}: the name {s['name']!r} is taken by an earlier stage")
        names.add(s["name"])
    return stages


def _check_stage(path: Path, i: int, stage: object) -> None:
    where = f"profile {path}: stage {i}"
    if not isinstance(stage, dict):
        raise ProfileError(f"{where}: must be a mapping with a name and a notebook or a command, got {stage!r}")
    unknown = sorted(set(map(str, stage)) - set(STAGE_KEYS))
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {unknown}; valid: {', '.join(STAGE_KEYS)}")
    for key, kind in STAGE_KEYS.items():
        if key in stage and not isinstance(stage[key], kind):
            raise ProfileError(f"{where}: {key!r} must be a {kind.__name__}, got {stage[key]!r}")
    if not stage.get("name") or ("notebook" in stage) == ("command" in stage):
        raise ProfileError(f"{where}: needs a name and either a notebook or a command")
    if "notebook" in stage and not (PROJECT_ROOT / stage["notebook"]).is_file():
        raise ProfileError(f"{where} ({stage['name']}): notebook {stage['notebook']} not found in {PROJECT_ROOT}")
    if "command" in stage and (not stage["command"] or not all(isinstance(w, str) for w in stage["command"])):
        raise ProfileError(f"{where} ({stage['name']}): 'command' must be a non-empty list of words")


def load_profile(profile: str) -> list[dict]:
    """The stages of a profile (a name or a file, ``profile_path``), checked, with ``${DATA}``, ``${WORK}``
    and ``${RUNS}`` substituted."""
    stages = read_profile(profile_path(profile))
    runs = PROJECT_ROOT / "runs" / profile_name(profile)
    subst = {"${DATA}": str(data_root()), "${RUNS}": str(runs), "${WORK}": str(work_root())}

    def fill(v):
        if isinstance(v, str):
            for k, r in subst.items():
                v = v.replace(k, r)
            return v
        if isinstance(v, list):
            return [fill(x) for x in v]
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return v

    return [fill(s) for s in stages]
