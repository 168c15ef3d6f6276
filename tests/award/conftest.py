"""Fixtures for the evaluation and award tests; the builders live in tests/award/award_kit.py."""
from __future__ import annotations

from typing import Any

import pytest

from tests.award.award_kit import AwardKit
from tests.bidding.helpers import Bench


@pytest.fixture
def kit(backend: str, world: Any, clock: Any) -> AwardKit:
    """One user per role, logged in, and the helpers to run a tender to its award."""
    return AwardKit(Bench(world, clock))
