"""The layout the README's code map promises: a package with thin scripts at the root, imports that run
one way, no sys.path changes, and a torch.hub entry that brings no generic module names along."""
import ast
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from dann.common import UserError
from dann.config import Config

SCRIPTS = {"main.py", "valid.py", "download_data.py", "image_annotate.py", "choose.py", "bench.py", "hubconf.py"}


def python_files():
    return [p for p in REPO.rglob("*.py") if not any(part.startswith(".") or part in ("runs", "data", "build")
                                                      for part in p.relative_to(REPO).parts)]


def test_the_root_holds_only_the_scripts_a_user_runs():
    assert {p.name for p in REPO.glob("*.py")} == SCRIPTS


@pytest.mark.parametrize("script", sorted(SCRIPTS - {"hubconf.py"}))
def test_a_script_is_a_command_line_only(script):
    """Its own functions parse flags and hand over to the package; the work is done there."""
    tree = ast.parse((REPO / script).read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert functions <= {"parse_args", "main", "short_name", "print_table"}, functions
    assert sum(1 for line in (REPO / script).read_text().splitlines() if line.strip()) < 130


def changes_sys_path(path):
    """Whether the file calls sys.path.insert/append/extend (found in its syntax tree, not its text)."""
    return any(isinstance(node, ast.Attribute) and node.attr in ("insert", "append", "extend")
               and ast.unparse(node.value) == "sys.path" for node in ast.walk(ast.parse(path.read_text())))


def test_nothing_changes_sys_path():
    assert [str(p.relative_to(REPO)) for p in python_files() if changes_sys_path(p)] == []


CORE = {"models", "augment", "methods", "stepping"}  # networks, augmentation, losses, the step and loop: the research
BELOW_THE_CORE = {"common"}  # the one error type a bad setting raises


def dann_imports(name):
    """The dann modules that dann/<name>.py imports, read from its syntax tree."""
    found = set()
    for node in ast.walk(ast.parse((REPO / "dann" / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dann"):
            found |= {node.module.split(".")[1]} if "." in node.module else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("dann.")}
    return found


def test_the_core_imports_nothing_of_the_shell_around_it():
    """Run folders, checkpoints, bundled models, evaluation, sweeps, the console: all call down into
    the core, never the other way."""
    for module in CORE:
        assert dann_imports(module) <= CORE | BELOW_THE_CORE, module
    assert dann_imports("training") & CORE  # and the loop does train through it


@pytest.mark.parametrize("module,absent", [
    ("dann.evaluation", "dann.training"),  # evaluating needs no engine
    ("dann.models", "dann.datasets"),  # the networks read no dataset
    ("dann.parsers", "dann.download"),  # the parsers never fetch
    ("dann.config", "dann.training"),
    ("dann.scores", "dann.training"),
    ("dann", "torch"),  # importing the package is light
])
@pytest.mark.slow
def test_a_module_does_not_import_what_it_does_not_need(module, absent):
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.slow
def test_hubconf_brings_only_the_package_into_a_users_process():
    code = ("import sys; before = set(sys.modules); import hubconf; "
            "print(sorted(m for m in set(sys.modules) - before if '.' not in m))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ours = {p.stem for p in REPO.glob("*.py")} | {"dann"} | {p.stem for p in (REPO / "dann").glob("*.py")}
    new_top_level = set(ast.literal_eval(r.stdout.strip()))
    assert new_top_level & ours == {"hubconf", "dann"}


def test_a_configuration_saved_with_the_old_name_of_the_method_setting_still_loads():
    saved = {"source": "mnist", "target": "mnist_m", "mode": "source-only", "epochs": 3}
    cfg = Config.from_saved(saved, "config.json")
    assert cfg.method == "source-only" and cfg.epochs == 3
    with pytest.raises(UserError, match="config.json does not hold the settings"):  # an unknown method, as before
        Config.from_saved({**saved, "mode": "dirt"}, "config.json")


@pytest.mark.slow
def test_the_installed_package_carries_its_models_and_pictures_and_trains_from_any_folder(synthetic_root, tmp_path):
    """`pip install .` (here: its wheel into a folder of its own), then from a folder outside the clone:
    `python -m dann.train` trains, the bundled models and the example pictures are found in the package."""
    wheel, site, elsewhere = tmp_path / "wheel", tmp_path / "site", tmp_path / "elsewhere"
    build = tmp_path / "clone"  # built from a copy: the build writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO, build, ignore=shutil.ignore_patterns(".git", "runs", "data", "build", "*.egg-info", "__pycache__"))
    def pip(*args):
        r = subprocess.run([sys.executable, "-m", "pip", *args, "-q"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    pip("wheel", str(build), "--no-deps", "--no-build-isolation", "-w", str(wheel))
    pip("install", "--no-deps", "--target", str(site), *map(str, wheel.glob("*.whl")))
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "dann.train", "--source", "mnist", "--target", "mnist_m", "--limit", "40",
                        "--epochs", "1", "--no-download", "--device", "cpu", "--data-dir", str(synthetic_root),
                        "--out", "run"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (elsewhere / "run" / "metrics.json").is_file()
    code = ("import dann.annotate as a, dann.pretrained as p; "
            "m = p.bundled_model(p.bundled_models()['default']); "
            "print(p.PRETRAINED_DIR, a.IMAGES_DIR, (a.IMAGES_DIR / 'pencil_7.jpg').is_file(), type(m).__name__)")
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == [str(site / "dann" / "_pretrained"), str(site / "dann" / "_images"), "True", "DANN"]
