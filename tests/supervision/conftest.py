"""Fixtures for the supervision tests; the builders live in supervision_helpers.py."""
from __future__ import annotations

from typing import Any

import pytest

from tests.supervision.supervision_helpers import Desk


@pytest.fixture
def desk(backend: str, world: Any, clock: Any) -> Desk:
    """One user per role, logged in, and the helpers to move projects through time."""
    return Desk(world, clock)
