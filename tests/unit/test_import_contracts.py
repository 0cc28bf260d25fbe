"""The layer contracts hold: import-linter's contracts in pyproject.toml are kept, its list of
forbidden adapters names every adapter package, and no module reaches one of ours by a name
that import-linter cannot see (``importlib.import_module``, ``__import__``)."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
OURS = tuple(CONFIG["root_packages"])


def test_every_contract_is_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(CONFIG['contracts'])} kept, 0 broken" in done.stdout


def test_the_pipeline_contract_forbids_every_adapter_but_the_shared_ones():
    [contract] = [c for c in CONFIG["contracts"] if c.get("source_modules") == ["pipeline"]]
    adapters = ROOT / "adapters"
    modules = {f"adapters.{p.stem}" for p in adapters.glob("*.py") if p.stem != "__init__"}
    modules |= {f"adapters.{p.parent.name}" for p in adapters.glob("*/__init__.py")}
    # Both sides see the ports, and the usage collector (a context variable, no I/O) that
    # adapters report their paid calls to while a stage runs.
    assert modules - set(contract["forbidden_modules"]) == {"adapters.ports",
                                                             "adapters.metering"}


def _dynamic_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = ast.unparse(node.func)
        if name.endswith(("import_module", "__import__")):
            target = node.args[0]
            if not isinstance(target, ast.Constant) or str(target.value).startswith(OURS):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_imports_one_of_ours_by_a_computed_name():
    sources = [ROOT / "celeryconfig.py"]
    for package in OURS:
        sources += sorted((ROOT / package).rglob("*.py"))
    assert [line for path in sources for line in _dynamic_imports(path)] == []
