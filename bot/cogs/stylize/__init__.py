"""The stylize feature: everything from a member's request to the finished image.

Read top to bottom: `commands` (the cog: /stylize, the message command, the mention
listener, /queue, /cancel) -> `requests` (attachments and settings -> a job; `uploads`
downloads and checks the images) -> `service` (admission, queueing, cancel, take-down,
restart) -> `follower` (one job's events -> its message) -> `progress` (throttled edits),
`delivery` (the last message, whatever the network does, exactly once) with `retry` (what is
retried, how often), and `views` (buttons, the /queue pager, the form). All wording is in
`bot.messages`; the options themselves are declared in `stylecore.option_specs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.bot import StyleBot


async def setup(bot: StyleBot) -> None:
    from bot.cogs.stylize.commands import Stylize

    await bot.add_cog(Stylize(bot))
