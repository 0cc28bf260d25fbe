"""The lock files (scripts/lock) pin what pyproject.toml asks for: the image installs
requirements/runtime.lock, the demo local.lock, the tests and CI dev.lock."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"runtime.lock": (), "local.lock": ("local",), "dev.lock": ("local", "dev")}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def wanted(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_every_dependency_is_pinned_within_its_bounds(lock, extras):
    pinned = pins(ROOT / "requirements" / lock)
    for requirement in wanted(extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in requirements/{lock}: run scripts/lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements/{lock} pins {name}=={pinned[name]}, outside {requirement}: "
            "run scripts/lock")


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_its_hashes(lock):
    text = (ROOT / "requirements" / lock).read_text()
    entries = re.split(r"\n(?=\S)", text)
    for entry in entries:
        if PIN.match(entry):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_image_and_ci_install_from_the_locks():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG LOCK=requirements/runtime.lock" in dockerfile
    assert "--require-hashes" in dockerfile
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "requirements/dev.lock" in setup
    assert "--require-hashes" in setup
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup local dev" in (ROOT / "scripts" / "test").read_text()
