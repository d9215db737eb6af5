"""dvc.yaml agrees with the code: each stage declares exactly the params it reads and the
modules it imports, so a change re-runs exactly what it affects."""

import ast
import hashlib
import importlib
from pathlib import Path

import yaml

from stages import cli
from vqgen import config

ROOT = Path(__file__).resolve().parents[1]
PLUMBING = {"src/vqgen/config.py", "src/vqgen/layout.py", "stages/common.py", "stages/cli.py"}  # shared by every stage


def dvc_stages():
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = ROOT / "src" if parts[0] == "vqgen" else ROOT
    for path in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
        if path.exists():
            return path
    return None


def imported_files(path: Path, seen: set[Path]) -> set[Path]:
    """Project files imported by `path`, transitively, not following the plumbing."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("vqgen", "stages"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] in ("vqgen", "stages")]
        for name in names:
            found = module_file(name)
            if found and found not in seen and str(found.relative_to(ROOT)) not in PLUMBING:
                seen.add(found)
                imported_files(found, seen)
    return seen


def test_every_stage_is_in_dvc_yaml():
    assert list(dvc_stages()) == list(cli.STAGES)


def test_params_match_what_each_stage_reads():
    for name, stage in dvc_stages().items():
        module = importlib.import_module(f"stages.{name}")
        assert config.keys(stage.get("params", [])) == cli.stage_keys(module), name


def test_deps_list_the_modules_each_stage_imports():
    for name, stage in dvc_stages().items():
        start = ROOT / "stages" / f"{name}.py"
        files = {str(p.relative_to(ROOT)) for p in imported_files(start, {start})}
        code = {f for f in files if not f.endswith("__init__.py")} - PLUMBING
        declared = {d for d in stage["deps"] if d.endswith(".py")}
        assert declared == code, name


def test_diffusion_temperature_is_read_by_sampling_only():
    readers = [n for n, s in dvc_stages().items() if "diffusion.temperature" in config.keys(s.get("params", []))]
    assert readers == ["sample_diffusion"]


def test_the_committed_lock_records_the_code_as_committed():
    """Every source file a stage depends on has, in dvc.lock, the hash it has in the tree: a change to the
    code without the run that records it would make `dvc repro` in a clone with the outputs run again."""
    stale = []
    for name, stage in yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"].items():
        for dep in stage.get("deps", []):
            path = ROOT / dep["path"]
            if path.suffix == ".py" and hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                stale.append(f"{name}: {dep['path']}")
    assert not stale, "dvc.lock is stale for " + ", ".join(stale) + "; run `dvc repro` and commit dvc.lock"
