"""The pure cores of trading/ import no web framework or database and never read the clock.

Checked on the source with ``ast``: a pure module takes ``now`` as an argument; reading
the time itself would make its results depend on when a test (or a replay) runs.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["trading/calendar.py", "trading/rulebook.py", "trading/rules_check.py", "trading/lifecycle.py",
        "trading/domain.py", "trading/draw.py", "trading/evaluation.py"]
FORBIDDEN = {"flask", "sqlalchemy", "flask_sqlalchemy", "flask_smorest", "flask_limiter"}
PROJECT_PACKAGES = {"trading", "core", "crypto", "audits", "bidding"}
# (object, method) pairs that read the clock, whatever the import style.
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
               ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "localtime"),
               ("time", "gmtime")}
CLOCK_NAMES_FROM_TIME = {"time", "time_ns", "monotonic", "localtime", "gmtime"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _forbidden_imports(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Forbidden imports of ``path`` and of every project module it imports, transitively,
    so purity cannot leak in through a helper module."""
    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    found: set[str] = set()
    for module in _imported_modules(_tree(path)):
        top = module.split(".")[0]
        if top in FORBIDDEN:
            found.add(f"{path.relative_to(ROOT)} imports {module}")
        elif top in PROJECT_PACKAGES:
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
            parts = module.split(".")
            for i in range(1, len(parts) + 1):
                target = _module_file(".".join(parts[:i]))
                if target is not None:
                    found |= _forbidden_imports(target, seen)
    return found


def _clock_reads(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            lines += [node.lineno for alias in node.names if alias.name in CLOCK_NAMES_FROM_TIME]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            owner = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            if (owner, node.func.attr) in CLOCK_CALLS:
                lines.append(node.lineno)
    return lines


def _pure_files() -> list[Path]:
    return [ROOT / name for name in PURE if (ROOT / name).exists()]


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_flask_or_database(path: Path):
    assert _forbidden_imports(path) == set()


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_reads_no_clock(path: Path):
    assert _clock_reads(_tree(path)) == [], f"{path.name} reads the clock"


def test_the_checker_catches_what_it_should():
    sample = ast.parse(
        "import datetime\nfrom time import monotonic\n"
        "a = datetime.datetime.now()\nb = date.today()\nc = time.time()\n")
    assert _clock_reads(sample) == [2, 3, 4, 5]
    assert _imported_modules(ast.parse("import flask\nfrom sqlalchemy.orm import Session\n")) == {
        "flask", "sqlalchemy.orm"}


def test_my_modules_are_present():
    for name in ("trading/calendar.py", "trading/rulebook.py", "trading/rules_check.py", "trading/lifecycle.py"):
        assert (ROOT / name).exists(), name
