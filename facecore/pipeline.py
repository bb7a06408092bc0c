"""Run the notebooks in order, headless, with one parameter file per profile.

    python -m facecore.pipeline --profile demo|smoke|full [--stages a,b] [--list] [--dry-run]

Profiles live in ``notebooks/profiles/<name>.yaml``: a list of stages, each a notebook executed by
papermill into ``runs/<profile>/`` (git-ignored) with its parameters, or a command. ``${DATA}`` in
a value is the data root (``$FACECORE_DATA``, default ``../shared/data``), ``${WORK}`` the folder for
large staged sets and long runs outside the project (``$FACECORE_WORK``, default ``../facecore-data``),
``${RUNS}`` the profile's run folder. Before anything runs, every stage's ``requires`` (paths under the data root) is
checked, and all that is missing is named at once.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from .paths import PROJECT_ROOT, data_root, work_root

PROFILES_DIR = PROJECT_ROOT / "notebooks" / "profiles"


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> list[dict]:
    """The stages of a profile, with ``${DATA}``, ``${WORK}`` and ``${RUNS}`` substituted."""
    import yaml

    path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"unknown profile {name!r}; valid profiles: {', '.join(list_profiles())}")
    spec = yaml.safe_load(path.read_text()) or {}
    runs = PROJECT_ROOT / "runs" / name
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

    stages = [fill(s) for s in spec.get("stages", [])]
    for i, s in enumerate(stages):
        if "name" not in s or ("notebook" not in s and "command" not in s):
            raise SystemExit(f"{path}: stage {i} needs a name and a notebook or a command")
    return stages


def missing_data(stages: list[dict]) -> list[str]:
    root = data_root()
    return sorted({f"{root / r}  (needed by stage {s['name']})" for s in stages
                   for r in s.get("requires", []) if not (root / r).exists()})


def run_stage(stage: dict, profile: str, index: int) -> None:
    runs = PROJECT_ROOT / "runs" / profile
    runs.mkdir(parents=True, exist_ok=True)
    if "notebook" in stage:
        import papermill as pm

        out = runs / f"{index:02d}-{stage['name']}.ipynb"
        pm.execute_notebook(str(PROJECT_ROOT / stage["notebook"]), str(out), parameters=stage.get("parameters", {}),
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
    ap.add_argument("--profile", default="demo", help=f"one of {', '.join(list_profiles())}")
    ap.add_argument("--stages", default="", help="comma-separated stage names to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the profile's stages and exit")
    ap.add_argument("--dry-run", action="store_true", help="check data and print what would run")
    ap.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                    help="override a notebook parameter in every stage that has parameters (YAML value)")
    args = ap.parse_args(argv)
    stages = load_profile(args.profile)
    overrides = {}
    for item in args.param:
        import yaml

        if "=" not in item:
            print(f"--param expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        overrides[k.strip()] = yaml.safe_load(v)
    for s in stages:
        if "notebook" in s:
            s["parameters"] = {**s.get("parameters", {}), **overrides}
    if args.stages:
        wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = set(wanted) - {s["name"] for s in stages}
        if unknown:
            print(f"unknown stage(s) {sorted(unknown)}; profile {args.profile} has: "
                  f"{', '.join(s['name'] for s in stages)}", file=sys.stderr)
            return 2
        stages = [s for s in stages if s["name"] in wanted]
    if args.list:
        for s in stages:
            print(f"{s['name']:28s} {s.get('notebook') or ' '.join(s['command'])}")
        return 0
    missing = missing_data(stages)
    if missing:
        print(f"profile {args.profile!r} needs data that is not on this machine:", file=sys.stderr)
        for m in missing:
            print(f"  missing: {m}", file=sys.stderr)
        print("Set FACECORE_DATA to the folder holding it (default ../shared/data); README.md, "
              "section 'Data', says where to get each data set.", file=sys.stderr)
        return 2
    os.environ.setdefault("MPLBACKEND", "Agg")
    for i, s in enumerate(stages, 1):
        print(f"[{i}/{len(stages)}] {s['name']}" + (" (dry run)" if args.dry_run else ""), flush=True)
        if not args.dry_run:
            t = time.time()
            run_stage(s, args.profile, i)
            print(f"   done in {time.time() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
