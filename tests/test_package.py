"""The package's shape: the library stands without pytest, and what it reads at run time ships inside it."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from importlib import resources
from pathlib import Path

from servegate.load.prompts import corpus_text

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "servegate"
GLUE = PACKAGE / "pytest"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (deferred imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the scan below reads absolute names only"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def is_pytest_side(module: str) -> bool:
    return module.split(".")[0] in ("pytest", "_pytest") or module.startswith("servegate.pytest")


def test_the_library_never_imports_pytest_or_the_pytest_glue() -> None:
    library = [p for p in PACKAGE.rglob("*.py") if GLUE not in p.parents]
    assert len(library) > 50, "the scan must see the library"
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if is_pytest_side(m)) for p in library}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_scan_sees_the_glues_own_imports() -> None:
    """The same scan on the plugin finds pytest and the bridge, so an empty result above is not a blind scan."""
    found = imported_modules(GLUE / "plugin.py")
    assert "pytest" in found and "servegate.pytest.bench_bridge" in found


def test_every_data_file_in_the_package_is_declared_package_data() -> None:
    """A file under servegate/ that the wheel leaves out is read from a checkout and missing when installed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    declared = config.get("package-data", {})
    data_files = [p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert data_files, "the corpus at least is package data"
    for path in data_files:
        package = ".".join(path.parent.relative_to(ROOT).parts)
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in declared.get(package, ())), (
            f"{path.relative_to(ROOT)} is not in [tool.setuptools.package-data] {package!r}"
        )


def test_prompts_are_cut_from_the_packaged_corpus() -> None:
    packaged = resources.files("servegate.data").joinpath("corpus.txt").read_text(encoding="utf-8")
    assert len(packaged) > 1000
    assert corpus_text() == packaged
