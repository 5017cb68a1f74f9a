"""Shared fixtures: every async test runs on asyncio and on trio; a client of a fresh emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hyber_async.testing import EmulatedClient, emulated_client

FIXTURES = Path(__file__).parent / "fixtures"
"""The JSON examples of the specification, copied from ``shared/spec/examples``."""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test on both backends."""
    return str(request.param)


@pytest.fixture
async def emulated() -> AsyncIterator[EmulatedClient]:
    """``emulated_client()`` with its defaults: a client of a fresh in-process emulator.

    Tests that need another configuration, a socket or client options call ``emulated_client``
    themselves.
    """
    async with emulated_client() as env:
        yield env
