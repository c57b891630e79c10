"""The fake's world: constants (``flags``), plain data (``models``), the indexed store (``store``) and
the permission rules (``permissions``)."""

from .flags import ChannelType, Intent, InteractionType, MessageFlag, Perm, as_int
from .models import (
    AppCommand,
    Attachment,
    Channel,
    Guild,
    Interaction,
    Member,
    Message,
    Overwrite,
    Role,
    User,
    iso_now,
    walk_components,
)
from .permissions import base_permissions, channel_permissions
from .store import FakeState

__all__ = [
    "AppCommand",
    "Attachment",
    "Channel",
    "ChannelType",
    "FakeState",
    "Guild",
    "Intent",
    "Interaction",
    "InteractionType",
    "Member",
    "Message",
    "MessageFlag",
    "Overwrite",
    "Perm",
    "Role",
    "User",
    "as_int",
    "base_permissions",
    "channel_permissions",
    "iso_now",
    "walk_components",
]
