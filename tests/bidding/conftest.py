"""Fixtures for the bidding tests; the builders live in tests/bidding/helpers.py."""
from __future__ import annotations

from typing import Any

import pytest

from tests.bidding.helpers import Bench


@pytest.fixture
def bench(backend: str, world: Any, clock: Any) -> Bench:
    """One user per role, logged in, and the helpers to run a tender (SQLite and PostgreSQL)."""
    return Bench(world, clock)
