"""The direction of dependencies and the purity of the cores, checked on the source."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> packages it may import
ALLOWED = {
    "crypto": {"crypto"},
    "core": {"core", "crypto", "audits", "trading"},  # core.runtime/docs wire the app only lazily
    "audits": {"audits", "crypto", "core", "trading"},
    "trading": {"trading", "crypto", "core", "audits"},
    "bidding": {"bidding", "trading", "crypto", "core", "audits"},
}
PROJECT = set(ALLOWED) | {"wsgi"}
PURE_MODULES = ["crypto/*.py", "trading/domain.py", "trading/calendar.py", "trading/rulebook.py",
                "trading/lifecycle.py", "trading/draw.py", "trading/recusal.py",
                "trading/evaluation.py", "audits/merkle.py", "audits/notes.py", "audits/entries.py",
                "audits/verify.py", "core/errors.py", "core/actor.py"]
FORBIDDEN_IMPORTS = {"flask", "flask_sqlalchemy", "sqlalchemy", "flask_smorest"}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
               ("time", "time"), ("time", "time_ns")}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _pure_files() -> list[Path]:
    files: list[Path] = []
    for pattern in PURE_MODULES:
        files.extend(sorted(ROOT.glob(pattern)))
    return files


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_no_flask_or_database_and_read_no_clock(path: Path):
    imported = _imports(path)
    assert not imported & FORBIDDEN_IMPORTS, f"{path} imports {imported & FORBIDDEN_IMPORTS}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            assert (name, node.func.attr) not in CLOCK_CALLS, f"{path}:{node.lineno} reads the clock"


def test_crypto_imports_nothing_from_the_project():
    for path in (ROOT / "crypto").rglob("*.py"):
        assert not (_imports(path) & (PROJECT - {"crypto"})), path


def test_lower_packages_never_import_bidding():
    for package in ("crypto", "core", "audits", "trading"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            assert "bidding" not in _imports(path), f"{path} imports bidding (dependencies point up)"


def test_only_the_clock_module_reads_the_system_time():
    offenders = []
    for package in ALLOWED:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "core" / "clock.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    target = node.func.value
                    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
                    if (name, node.func.attr) in CLOCK_CALLS:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
