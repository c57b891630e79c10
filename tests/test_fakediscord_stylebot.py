"""StyleBot itself under the fake's strict rate limits: a /stylize job with progress edits, previews
and the result upload under tight buckets and an unannounced 429 still ends with its result, and the
bot never sends a request before a reset a 429 announced."""

from __future__ import annotations

import pytest

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
