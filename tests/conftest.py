"""Fixtures shared by the tests; the data and helpers they use are in helpers.py."""

from __future__ import annotations

import pytest
from helpers import Walker

from claimstate import Engine


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def walker(engine: Engine) -> Walker:
    return Walker(engine)
