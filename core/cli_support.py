"""Helpers for `ebid` commands that need the app (database, keys, clock)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click


def with_app(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run the command inside an app context of ``wsgi.create_app()``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from wsgi import create_app
        app = create_app()
        with app.app_context():
            return func(*args, **kwargs)

    return wrapper


def fail(code: str, message: str, exit_code: int = 1) -> None:
    """Print ``error: code: message`` to stderr and exit."""
    click.echo(f"error: {code}: {message}", err=True)
    raise SystemExit(exit_code)
