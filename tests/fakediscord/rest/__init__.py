"""The REST API v10 resources the fake implements, one module per Discord resource."""

from __future__ import annotations

from ..core import Context
from ..routing import Route
from .application import ApplicationResource
from .base import Resource
from .cdn import Cdn
from .channels import ChannelsResource
from .commands import CommandsResource
from .guilds import GuildsResource
from .interactions import InteractionsResource
from .users import UsersResource
from .webhooks import WebhooksResource

RESOURCES: tuple[type[Resource], ...] = (
    ApplicationResource,
    UsersResource,
    CommandsResource,
    InteractionsResource,
    WebhooksResource,
    ChannelsResource,
    GuildsResource,
)


def build_routes(ctx: Context) -> list[Route]:
    """Every route of every resource, each resource sharing ``ctx``."""
    return [route for cls in RESOURCES for route in cls(ctx).routes()]


__all__ = ["RESOURCES", "Cdn", "Resource", "build_routes"]
