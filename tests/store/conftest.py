"""Fixtures of the store tests: a service on a clock the test moves (a test file may define its own `service`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import Clock

from claimstate import ClaimService


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store_target: str, clock: Clock) -> Iterator[ClaimService]:
    """A service on each backend, reading the test's `clock` for leases, entered_at and steps given no `now`."""
    with ClaimService(store_target, clock=clock) as service:
        yield service
