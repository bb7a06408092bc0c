"""Run the notebooks in order, headless, with one parameter file per profile.

    python -m facecore.pipeline --profile demo|smoke|full|FILE.yaml [--stages a,b] [-p NAME=VALUE ...] [--list] [--dry-run]

Profiles live in ``notebooks/profiles/<name>.yaml`` (or any file: a ``--profile`` value with a path
separator or ending in ``.yaml``/``.yml`` is a path; ``facecore.core.profiles`` checks its shape): a list of
stages, each a notebook executed by papermill into ``runs/<profile>/`` (git-ignored) with its
parameters, or a command. ``${DATA}`` in
a value is the data root (``$FACECORE_DATA``, default ``../shared/data``), ``${WORK}`` the folder for
large staged sets and long runs outside the project (``$FACECORE_WORK``, default ``../facecore-data``),
``${RUNS}`` the profile's run folder. Before anything runs, every stage's ``requires`` (paths under the data root) is
checked, and all that is missing is named at once. ``-p NAME=VALUE`` is checked against the parameters
cells of the selected stages' notebooks (name and declared type; exit 2 with one line otherwise) and
goes to the stages whose notebook declares it. The loss-family notebooks take the shared training
settings (``facecore.core.settings``: ``EPOCHS``, ``ARCH``, ...) in one ``TRAINING`` dict; profiles and
``-p`` name them flat (or ``-p 'TRAINING={EPOCHS: 5, LR: 0.2}'``), and the pipeline puts them into
``TRAINING``; a ``-p`` value wins over the profile's, and every value is checked against the setting's
type and limits before any stage runs. A float given as ``nan`` or ``inf`` is refused. Executed notebooks are numbered
by the stage's position in the whole profile, so runs of different ``--stages`` never overwrite each
other.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .core.paths import PROJECT_ROOT, data_root
from .core.profiles import PROFILES_DIR, ProfileError, list_profiles, load_profile, profile_name  # noqa: F401
from .core.settings import TRAINING_SETTINGS, check_training


def missing_data(stages: list[dict]) -> list[str]:
    """What the stages require and is not there, unless an earlier stage of the list makes it (its
    ``RUN_DIR`` or ``DESTINATION``, a path inside it or a folder holding it: a fine-tune of a run, or
    crops that this invocation makes first)."""
    root = data_root()
    out, made = set(), []
    for s in stages:
        for r in s.get("requires", []):
            p = root / r
            if not p.exists() and not any(p == d or d in p.parents or p in d.parents for d in made):
                out.add(f"{p}  (needed by stage {s['name']})")
        made += [root / str(s["parameters"][k]) for k in ("RUN_DIR", "DESTINATION") if s.get("parameters", {}).get(k)]
    return sorted(out)


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, tuple[str, object]]:
    """NAME -> (declared type, default) of a notebook's ``parameters`` cell (annotated literals)."""
    path = PROJECT_ROOT / notebook
    cells = json.loads(path.read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    src = "\n".join(ln for ln in "".join(cell["source"]).splitlines() if not ln.lstrip().startswith(("%", "!")))
    out: dict[str, tuple[str, object]] = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = (ast.unparse(node.annotation), _literal(node.value))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _literal(node.value)
            out[node.targets[0].id] = (type(value).__name__, value)
    return out


def accepted_parameters(notebook: str | os.PathLike) -> dict[str, tuple[str, object]]:
    """``notebook_parameters``, plus the shared training settings (``facecore.core.settings``) where the
    notebook takes them in a ``TRAINING`` dict."""
    declared = notebook_parameters(notebook)
    if not _takes_training(declared):
        return declared

    return {n: (type(s.default).__name__, s.default) for n, s in TRAINING_SETTINGS.items()} | declared


def stage_parameters(stage: dict) -> dict:
    """The papermill parameters of a notebook stage: the shared training settings it names flat move
    into the notebook's ``TRAINING`` dict where it takes one (checked: ValueError naming the stage)."""

    params = dict(stage.get("parameters", {}))
    declared = notebook_parameters(stage["notebook"])
    where = f"stage {stage['name']}"
    if not _takes_training(declared):
        if _calls_setup_training(stage["notebook"]):  # declares the shared settings flat (distill)
            check_training({k: v for k, v in params.items() if k in TRAINING_SETTINGS}, where)
        return params
    moved = {k: params.pop(k) for k in list(params) if k in TRAINING_SETTINGS and k not in declared}
    given = params.get("TRAINING", {})
    check_training(given, where)
    twice = sorted(set(moved) & set(given))
    if twice:
        raise ValueError(f"{where}: {', '.join(twice)} given both flat and in TRAINING; give each once")
    params["TRAINING"] = {**given, **moved}
    check_training(params["TRAINING"], where)
    return params


def _calls_setup_training(notebook: str | os.PathLike) -> bool:
    """Whether a notebook builds its training run from the shared settings (``experiment.setup_training``)."""
    return "setup_training(" in (PROJECT_ROOT / notebook).read_text()


def _takes_training(declared: dict[str, tuple[str, object]]) -> bool:
    return declared.get("TRAINING", ("",))[0] == "dict"


def _literal(node) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:  # not a literal: its type is all that is known
        return None


_TYPES = {"int": (int,), "float": (float, int), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}


def check_value(name: str, raw: str, declared: str, default: object) -> object:
    """``raw`` (YAML) as a value of the declared type; raises ValueError naming the parameter."""
    kinds = [k.strip() for k in declared.split("|")]
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ValueError(f"-p {name}={raw}: not a valid YAML value ({str(e).splitlines()[0]})") from None
    if "str" in kinds and not isinstance(value, str) and value is not None:
        return raw  # e.g. -p RUN_DIR=2024: a name, not a number
    if "float" in kinds and isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads 1e-3 as a string
        except ValueError:
            pass
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"-p {name}={raw}: {name} must be a finite number")
    allowed = tuple(t for k in kinds for t in _TYPES.get(k, ()))
    if not allowed:
        allowed = (type(default),)
    ok = (value is None and "None" in kinds) or (isinstance(value, allowed)
                                               and not (isinstance(value, bool) and bool not in allowed))
    if not ok:
        raise ValueError(f"-p {name}={raw}: {name} is declared {declared} (default {default!r}), "
                         f"got {type(value).__name__} {value!r}")
    return value


def apply_overrides(stages: list[tuple[int, dict]], items: list[str]) -> None:
    """Check ``NAME=VALUE`` items against the notebooks' parameters cells and add each to the
    parameters of the stages whose notebook declares it; a bad item raises ValueError (one line)."""
    declared = {i: accepted_parameters(s["notebook"]) for i, s in stages if "notebook" in s}
    valid = sorted({n for d in declared.values() for n in d})
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"-p expects NAME=VALUE, got {item!r}")
        if name not in valid:
            raise ValueError(f"-p {name}: no notebook of these stages has a parameter {name}; "
                             f"valid: {', '.join(valid) or '(none)'}")
        for i, s in stages:
            if name in declared.get(i, {}):
                _override(s, name, raw, declared[i])


def _override(stage: dict, name: str, raw: str, declared: dict[str, tuple[str, object]]) -> None:
    """Set ``-p name=raw`` in a stage's parameters; the shared settings of a notebook that takes them in
    ``TRAINING`` (named flat or as ``TRAINING={...}``) go into that dict, replacing the profile's values."""
    value = check_value(name, raw, *declared[name])
    params = dict(stage.get("parameters", {}))
    if not _takes_training(declared) or (name != "TRAINING" and name not in TRAINING_SETTINGS):
        stage["parameters"] = {**params, name: value}
        return
    items = value if name == "TRAINING" else {name: value}
    items = {k: _yaml_float(v) if k in TRAINING_SETTINGS and isinstance(TRAINING_SETTINGS[k].default, float) else v
             for k, v in items.items()}
    check_training(items, f"-p {name}={raw}")
    for k in items:
        params.pop(k, None)
    params["TRAINING"] = {**params.get("TRAINING", {}), **items}
    stage["parameters"] = params


def _yaml_float(value: object) -> object:
    """A string YAML 1.1 did not read as a number (``1e-3``) as a float; other values unchanged."""
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def run_stage(stage: dict, profile: str, index: int) -> None:
    """Execute one stage; a notebook's executed copy is ``runs/<profile>/<index>-<name>.ipynb``, where
    ``index`` is the stage's position in the whole profile."""
    runs = PROJECT_ROOT / "runs" / profile
    runs.mkdir(parents=True, exist_ok=True)
    if "notebook" in stage:
        import papermill as pm  # deferred: heavy (~2 s): only running a stage needs it (--list and --dry-run do not)

        out = runs / f"{index:02d}-{stage['name']}.ipynb"
        pm.execute_notebook(str(PROJECT_ROOT / stage["notebook"]), str(out), parameters=stage_parameters(stage),
                            cwd=str(PROJECT_ROOT), progress_bar=False, log_output=True,
                            kernel_name=stage.get("kernel", "python3"))
        print(f"   executed notebook: {out.relative_to(PROJECT_ROOT)}")
    else:
        cmd = [sys.executable if c == "python" else c for c in stage["command"]]
        rc = subprocess.call(cmd, cwd=PROJECT_ROOT)
        if rc != 0:
            raise SystemExit(f"stage {stage['name']} failed: {' '.join(cmd)} exited with {rc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facecore.pipeline", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="demo", help=f"one of {', '.join(list_profiles())}, or a profile file "
                    "(a value with a path separator or ending in .yaml/.yml)")
    ap.add_argument("--stages", default="", help="comma-separated stage names to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the profile's stages and exit")
    ap.add_argument("--dry-run", action="store_true", help="check data and print what would run, with each "
                    "notebook's parameters")
    ap.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                    help="override a notebook parameter (YAML value, checked against the parameters cell) in "
                         "the stages whose notebook declares it")
    args = ap.parse_args(argv)
    try:
        stages = list(enumerate(load_profile(args.profile), 1))  # numbered by position in the whole profile
    except ProfileError as e:
        print(e, file=sys.stderr)
        return 2
    profile = profile_name(args.profile)
    if args.stages:
        wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = set(wanted) - {s["name"] for _, s in stages}
        if unknown:
            print(f"unknown stage(s) {sorted(unknown)}; profile {profile} has: "
                  f"{', '.join(s['name'] for _, s in stages)}", file=sys.stderr)
            return 2
        stages = [(i, s) for i, s in stages if s["name"] in wanted]
    try:
        apply_overrides(stages, args.param)
        for _, s in stages:  # a bad shared setting in a profile stops the run before any stage
            if "notebook" in s:
                stage_parameters(s)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.list:
        for i, s in stages:
            print(f"{i:2d} {s['name']:28s} {s.get('notebook') or ' '.join(s['command'])}")
        return 0
    missing = missing_data([s for _, s in stages])
    if missing:
        print(f"profile {profile!r} needs data that is not on this machine:", file=sys.stderr)
        for m in missing:
            print(f"  missing: {m}", file=sys.stderr)
        print("Set FACECORE_DATA to the folder holding it (default ../shared/data); docs/data.md "
              "says where to get each data set.", file=sys.stderr)
        return 2
    os.environ.setdefault("MPLBACKEND", "Agg")
    for n, (i, s) in enumerate(stages, 1):
        print(f"[{n}/{len(stages)}] {s['name']}" + (" (dry run)" if args.dry_run else ""), flush=True)
        if args.dry_run and "notebook" in s:  # what the notebook would get, -p and TRAINING applied
            print(f"   {s['notebook']} {stage_parameters(s)}", flush=True)
        if not args.dry_run:
            t = time.time()
            run_stage(s, profile, i)
            print(f"   done in {time.time() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
