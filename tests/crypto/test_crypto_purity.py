"""crypto/ stays pure: no web framework, no database, no clock (DESIGN.md, STYLE.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crypto.errors import CODES

CRYPTO = Path(__file__).resolve().parents[2] / "crypto"
MODULES = sorted(CRYPTO.rglob("*.py"))
FORBIDDEN_IMPORTS = {"flask", "sqlalchemy", "flask_sqlalchemy", "core", "audits", "trading", "bidding", "wsgi"}
CLOCK_FUNCTIONS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns", "localtime",
                   "gmtime", "perf_counter", "ctime"}
CLOCK_OWNERS = {"datetime", "date", "time"}


def dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def violations(source: str) -> list[str]:
    """Imports of frameworks, databases or outer packages, and reads of the clock."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_IMPORTS]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] in FORBIDDEN_IMPORTS:
                found.append(f"from {module} import")
            if module == "time":
                found += [f"from time import {a.name}" for a in node.names if a.name in CLOCK_FUNCTIONS]
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name[-2:-1] and name[-2] in CLOCK_OWNERS and name[-1] in CLOCK_FUNCTIONS:
                found.append(f"call {'.'.join(name)}")
            if name[-1:] in (("__import__",), ("import_module",)):
                found.append("dynamic import")
    return found


def test_the_scanner_catches_what_it_should():
    bad = """
import flask
from sqlalchemy.orm import Session
import flask_sqlalchemy as fs
from datetime import datetime
from time import time
x = datetime.now()
y = datetime.datetime.utcnow()
z = __import__("flask")
"""
    assert len(violations(bad)) == 7   # importing the datetime class is fine; calling now() is not
    assert violations("from datetime import datetime, timezone\nx = datetime(2026, 1, 1)\n") == []


def test_there_are_modules_to_check():
    assert {p.name for p in MODULES} >= {"canonical.py", "sealed.py", "shamir.py", "opening.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_crypto_module_is_pure(path):
    assert violations(path.read_text(encoding="utf-8")) == []


def raised_codes(path: Path):
    """Every string literal passed first to CryptoError(...) in a module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and dotted(node.func)[-1:] == ("CryptoError",) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


@pytest.mark.parametrize("path", MODULES + [CRYPTO.parent / "bidding" / "offline_cli.py"], ids=lambda p: p.name)
def test_every_raised_code_is_declared(path):
    for lineno, code in raised_codes(path):
        assert code in CODES, f"{path.name}:{lineno} raises undeclared code {code!r}"


def test_codes_are_snake_case():
    assert all(code.replace("_", "").isalnum() and code == code.lower() for code in CODES)
