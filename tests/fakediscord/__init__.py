"""A fake Discord (REST v10 + gateway + CDN) on 127.0.0.1 that the real discord.py client talks to.

Import ``FakeDiscord`` and use it as an async context manager; see ``server.py`` for the API.
"""

from .recording import Fault, RecordedFile, RecordedRequest, client_log_problems
from .server import DiscordError, FakeDiscord, GatewaySession
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
    "Channel",
    "ChannelType",
    "DiscordError",
    "FakeDiscord",
    "FakeState",
    "Fault",
    "GatewaySession",
    "Guild",
    "Intent",
    "Interaction",
    "InteractionType",
    "Member",
    "Message",
    "MessageFlag",
    "Overwrite",
    "Perm",
    "RecordedFile",
    "RecordedRequest",
    "Role",
    "User",
    "client_log_problems",
]
