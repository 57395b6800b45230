"""The layers' import rules are enforced by `lint-imports`: a breach planted in a copy of
the tree is reported, and the kernel's contract names every kernel module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aurora_bg", "flows", "tasks", "lab", "benchmarks", "tests")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_the_kernel_contract_names_every_module_of_the_kernel() -> None:
    kernel = {
        f"aurora_bg.{path.stem}"
        for path in (ROOT / "aurora_bg").glob("*.py")
        if path.stem != "__init__"
    }
    listed = set(contracts()["The kernel imports no layer above it"]["source_modules"])
    assert listed == kernel


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """lint-imports' report on a copy of the tree with one breach planted in each layer."""
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy)
    planted = {
        "tasks/planted.py": "from lab import control",
        "flows/planted.py": "from lab import topology",
        "aurora_bg/planted.py": "from flows import upgrade",
        "lab/planted.py": "from tasks import aws",
        "benchmarks/planted.py": "from tests import planted_target",
        "tests/planted_target.py": "",
    }
    for path, line in planted.items():
        (copy / path).write_text(f"{line}  # noqa: F401\n" if line else "")
    # The kernel's contract lists its modules: the planted one joins the list, as a new
    # kernel module must (the test above sees to that).
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '"aurora_bg.errors",', '"aurora_bg.errors", "aurora_bg.planted",'
        )
    )
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0, done.stdout
    return done.stdout


@pytest.mark.parametrize(
    "breach",
    [
        "tasks.planted -> lab.control",
        "flows.planted -> lab.topology",
        "aurora_bg.planted -> flows.upgrade",
        "lab.planted -> tasks.aws",
        "benchmarks.planted -> tests.planted_target",
    ],
)
def test_a_planted_import_across_the_layers_is_reported(planted_report: str, breach: str) -> None:
    assert breach in planted_report
