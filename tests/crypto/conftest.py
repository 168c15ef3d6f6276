"""Fixtures for the crypto tests (builders live in crypto_testkit.py)."""
from __future__ import annotations

import pytest

from crypto_testkit import Party, build_policy, new_party


@pytest.fixture(scope="session")
def four_custodians() -> list[Party]:
    return [new_party() for _ in range(4)]


@pytest.fixture(scope="session")
def policy_3_of_4(four_custodians: list[Party]) -> bytes:
    return build_policy(four_custodians, 3)
