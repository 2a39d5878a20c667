"""The pinned files the build and the Makefile install from must say what pyproject.toml says."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("-r ")}


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = data["optional-dependencies"]
    return {"runtime": data["dependencies"], "run": extras["run"], "dev": extras["dev"]}


def test_layer_requirements_are_the_project_runtime_dependencies() -> None:
    layers = set().union(
        *(pins(ROOT / f"layers/{layer}/requirements.txt") for layer in ("checkout_core", "stripe", "adyen"))
    )
    assert layers == set(project()["runtime"])


def test_run_requirements_are_the_project_run_dependencies() -> None:
    assert pins(ROOT / "requirements-run.txt") == set(project()["run"])
    assert "-r layers/checkout_core/requirements.txt" in (ROOT / "requirements-run.txt").read_text()


def test_dev_requirements_are_the_project_dev_dependencies() -> None:
    assert pins(ROOT / "requirements-dev.txt") == set(project()["dev"])
    assert "-r requirements-run.txt" in (ROOT / "requirements-dev.txt").read_text()


def test_every_dependency_is_pinned_exactly() -> None:
    for requirement in project()["runtime"] + project()["run"] + project()["dev"]:
        assert "==" in requirement, requirement
