"""Developer tool: rewrite the initial migration from the models.

Only while no production database exists (before the first release): afterwards every
schema change is a new revision. Run: ``python -m core.migrations.regenerate_initial``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from core.migrate import MIGRATIONS, alembic_config

INITIAL = "0001_initial"


def main() -> None:
    versions = MIGRATIONS / "versions"
    for old in versions.glob(f"{INITIAL}*.py"):
        old.unlink()
    guards = versions / "0002_audit_guards.py"
    hidden = guards.with_suffix(".hold")
    if guards.exists():
        guards.rename(hidden)  # autogenerate against an empty database, without later revisions
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = alembic_config(f"sqlite:///{Path(tmp) / 'empty.sqlite3'}")
            command.revision(cfg, message="initial schema", autogenerate=True, rev_id=INITIAL)
    finally:
        if hidden.exists():
            hidden.rename(guards)
    generated = next(versions.glob(f"{INITIAL}*.py"))
    generated.rename(versions / f"{INITIAL}.py")


if __name__ == "__main__":
    main()
