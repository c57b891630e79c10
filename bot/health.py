"""Liveness and metrics over HTTP for orchestrators and Prometheus.

`/healthz` answers 200 while the bot is connected and taking jobs and 503 otherwise (so a
draining or disconnected bot is visibly unhealthy); `/metrics` is the Prometheus text
format (what it holds: `bot.metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, metrics: Metrics, healthy: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Start serving; returns the bound port (useful when configured as 0)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        log.info("health endpoint on http://%s:%s/healthz", self.host, self.port)
        return self.port

    async def _healthz(self, request: web.Request) -> web.Response:
        status = self.healthy()
        return web.json_response(status, status=200 if status.get("ok") else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
