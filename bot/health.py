"""Health probes and metrics over HTTP for orchestrators and Prometheus.

Three probes, as Kubernetes names them (https://kubernetes.io/docs/reference/using-api/health-checks/):
`/livez` answers 200 whenever the process's event loop answers at all (restart it if not);
`/readyz` answers 200 only when the bot can do work now: connected to Discord, taking jobs, and
at least one worker ready (a bot whose workers cannot start is up but useless, and says why in
the 503's body); `/healthz` keeps its documented meaning (connected and taking jobs). Every
probe answers JSON with `ok`. `/metrics` is the Prometheus text format (what it holds:
`bot.metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics

log = logging.getLogger(__name__)

Probe = Callable[[], dict[str, Any]]


class HealthServer:
    """Serves each probe at its path (200 when its answer says `ok`, else 503) and `/metrics`."""

    def __init__(self, metrics: Metrics, probes: Mapping[str, Probe], host: str, port: int) -> None:
        self.metrics = metrics
        self.probes = dict(probes)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Start serving; returns the bound port (useful when configured as 0)."""
        app = web.Application()
        for path, probe in self.probes.items():
            app.router.add_get(path, self._prober(probe))
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

    @staticmethod
    def _prober(probe: Probe) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            status = probe()
            return web.json_response(status, status=200 if status.get("ok") else 503)

        return answer

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
