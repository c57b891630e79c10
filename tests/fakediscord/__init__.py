"""A fake Discord (REST v10 + gateway + CDN) on 127.0.0.1 that the real discord.py client talks to.

Import ``FakeDiscord`` and use it as an async context manager; README.md describes what it
implements and how to drive it.
"""

from .errors import DiscordError
from .faults import Fault, Hold
from .gateway import GatewaySession
from .ratelimits import BucketRule, BucketStats, RateLimitReport
from .recording import RecordedFile, RecordedRequest, client_log_problems
from .server import FakeDiscord
from .state import (
    AppCommand,
    Attachment,
    Channel,
    ChannelType,
    FakeState,
    Guild,
    Intent,
    Interaction,
    InteractionType,
    Member,
    Message,
    MessageFlag,
    Overwrite,
    Perm,
    Role,
    User,
)

__all__ = [
    "AppCommand",
    "Attachment",
    "BucketRule",
    "BucketStats",
    "Channel",
    "ChannelType",
    "DiscordError",
    "FakeDiscord",
    "FakeState",
    "Fault",
    "GatewaySession",
    "Guild",
    "Hold",
    "Intent",
    "Interaction",
    "InteractionType",
    "Member",
    "Message",
    "MessageFlag",
    "Overwrite",
    "Perm",
    "RateLimitReport",
    "RecordedFile",
    "RecordedRequest",
    "Role",
    "User",
    "client_log_problems",
]
