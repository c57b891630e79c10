"""StyleBot itself against the fake: under strict rate limits a /stylize job with progress edits,
previews and the result upload under tight buckets and an unannounced 429 still ends with its
result, and the bot never sends a request before a reset a 429 announced; and the README's example
runs as written."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from stylecore.executors.base import Executor

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import BotEnv  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_stylize_under_strict_rate_limits_honours_every_429(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    limits = fd.rate_limits
    limits.strict = True
    limits.set_limit("interaction_edit", limit=2, window=1.0)
    limits.set_limit("message_edit", limit=2, window=1.0)
    limits.set_limit("uploads", limit=1, window=1.0)
    limits.force_429("PATCH", "/webhooks/{app}/{token}/messages/{m}", times=1, retry_after=0.5)
    await bot_env.start_bot()

    inter = await bot_env.stylize(size=48, steps=12)
    msg = await bot_env.wait_done(inter)
    assert msg.attachments[0].data.startswith(b"\x89PNG")

    report = fd.rate_limit_report()
    edits = report.buckets["interaction_edit"]
    # Progress edits paced by the headers alone (never a full bucket), the forced 429 waited out.
    assert edits.requests >= 3 and edits.exhausted == 0 and edits.forced == 1, str(report)
    assert report.dishonoured == 0, str(report)
    assert all("X-RateLimit-Bucket" in r.response_headers for r in fd.requests if r.api and r.done)


class _SharedExecutor:
    """The session's warm executor, handed to the README example in place of a fresh one: starting
    and shutting it down are the fixture's business."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    async def start(self) -> None:
        pass

    async def shutdown(self, grace: float = 30.0) -> list[Any]:
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_the_readme_example_runs(style_executor: Executor, tmp_path: Path) -> None:
    """The README's example is run as written, except that it gets the session's warm worker."""
    readme = (Path(__file__).parent / "fakediscord" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and inspect.iscoroutinefunction(v)]
    assert len(tests) == 1
    namespace["make_executor"] = lambda *args, **kwargs: _SharedExecutor(style_executor)
    await tests[0](tmp_path)
