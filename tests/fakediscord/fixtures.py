"""Ready-made pytest fixtures; wire them in from conftest with
``from fakediscord.fixtures import fake_discord  # noqa: F401`` (or ``pytest_plugins``).

``loop_scope="function"`` is explicit because this project's pytest config sets the default
*fixture* loop scope to "session" while async tests run in a per-test loop; a fake started in a
different loop than the test would hang or raise "attached to a different loop".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from .recording import client_log_problems
from .server import FakeDiscord


@pytest_asyncio.fixture(loop_scope="function")
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started, installed FakeDiscord; stopped (and strict-checked) after the test."""
    async with FakeDiscord() as fd:
        yield fd


@pytest.fixture
def client_logged_no_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """discord.py logs (rather than raises) many parse and handler failures; a test using this
    fixture fails on any of them (``pytestmark = pytest.mark.usefixtures("client_logged_no_errors")``)."""
    caplog.set_level(logging.INFO)
    yield
    problems = client_log_problems(caplog.records)
    assert not problems, problems
