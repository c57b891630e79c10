"""What a client asks before it connects: where the gateway is
(https://discord.com/developers/docs/events/gateway#get-gateway-bot) and which application it is
(https://discord.com/developers/docs/resources/application#get-current-application)."""

from __future__ import annotations

from typing import Any

from .. import payloads as P
from ..recording import RecordedRequest
from ..routing import Route
from .base import Resource


class ApplicationResource(Resource):
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/gateway", self.gateway, auth=False),
            Route("GET", "/gateway/bot", self.gateway_bot),
            Route("GET", "/oauth2/applications/@me", self.application),
            Route("GET", "/applications/@me", self.application),
        ]

    def _url(self) -> str:
        return self.ctx.gateway.url.rstrip("/")

    async def gateway(self, rec: RecordedRequest) -> Any:
        return {"url": self._url()}

    async def gateway_bot(self, rec: RecordedRequest) -> Any:
        return {
            "url": self._url(),
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1},
        }

    async def application(self, rec: RecordedRequest) -> Any:
        return P.application(self.state, self.state.application_owner, self.ctx.settings.privileged_intents)
