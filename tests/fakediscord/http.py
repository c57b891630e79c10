"""The HTTP side of the fake: every request is recorded, then answered by an injected fault, by the
REST route it matches (``/api/v10/...``, after the rate limiter admitted it), or by the CDN (any
other path).

Answers follow Discord's conventions: JSON bodies with Content-Type exactly ``application/json``
(discord.py decodes nothing else), 204 without a body, 401 for a wrong bot token on routes that
need it, 405 for a known path under another method, 404 for unknown paths — those are also kept in
``unhandled`` so a strict fake fails the test instead of silently answering 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .core import Changes, Settings
from .errors import DiscordError
from .faults import Faults
from .ratelimits import RateLimiter
from .recording import RecordedRequest, parse_body
from .rest import Cdn
from .routing import Router

log = logging.getLogger("fakediscord")

API_PREFIX = "/api/v10"


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)


class HttpFront:
    """Records and answers REST and CDN requests."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        cdn: Cdn,
        faults: Faults,
        rate_limits: RateLimiter,
        changes: Changes,
    ) -> None:
        self.settings = settings
        self.router = router
        self.cdn = cdn
        self.faults = faults
        self.rate_limits = rate_limits
        self.changes = changes
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.server_errors: list[str] = []

    async def _record(self, request: web.Request) -> RecordedRequest:
        path = request.path
        api = path.startswith(API_PREFIX + "/") or path == API_PREFIX
        body = await request.read()
        parsed, files, form = parse_body(request.headers.get("Content-Type", ""), body)
        rec = RecordedRequest(
            method=request.method,
            path=path[len(API_PREFIX) :] if api else path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            api=api,
            json=parsed,
            files=files,
            form=form,
        )
        self.requests.append(rec)
        return rec

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()  # before the body is read: when the client sent the request
        rec = await self._record(request)
        try:
            await self.faults.wait_if_held(rec, self.changes.notify)
            fault = self.faults.take(rec)
            if fault is not None and fault.disconnect is not None:
                rec.fault = True
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.disconnect == "after":  # it takes effect; only the answer is lost
                    with contextlib.suppress(DiscordError):
                        await (self._api(request, rec, arrived) if rec.api else self._cdn(rec))
                return self._hang_up(request, rec)
            if fault is not None:
                rec.fault = True
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                rec.response = fault.body()
                resp: web.StreamResponse = json_response(rec.response, fault.status, fault.response_headers())
            elif rec.api:
                resp = await self._api(request, rec, arrived)
            else:
                resp = await self._cdn(rec)
        except DiscordError as err:
            rec.response = err.body()
            resp = json_response(rec.response, err.status)
        except Exception:
            tb = traceback.format_exc()
            self.server_errors.append(f"{rec.method} {rec.path}:\n{tb}")
            log.error("fake discord handler crashed on %s %s\n%s", rec.method, rec.path, tb)
            rec.response = {"message": "500: Internal Server Error (fake)", "code": 0}
            resp = json_response(rec.response, 500)
        rec.response_headers = dict(resp.headers)
        rec.status = resp.status
        self.changes.notify()
        return resp

    async def _cdn(self, rec: RecordedRequest) -> web.StreamResponse:
        return self.cdn.serve(rec.method, rec.path)

    def _hang_up(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        """Close the connection without an answer: the client sees a network error."""
        if request.transport is not None:
            request.transport.close()
        rec.status = 0  # no answer reached the client (`response` is what it would have been)
        self.changes.notify()
        return web.Response(status=499)  # never sent: the transport is closed

    async def _api(self, request: web.Request, rec: RecordedRequest, arrived: float) -> web.StreamResponse:
        found = self.router.match(rec.method, rec.path)
        if found is None:
            self.unhandled.append(rec)
            raise DiscordError(404, "404: Not Found", 0)
        route, params = found
        if route.auth and request.headers.get("Authorization") != f"Bot {self.settings.token}":
            raise DiscordError(401, "401: Unauthorized", 0)
        admission = self.rate_limits.admit(route, params, rec, arrived)
        if admission.retry_after is not None:
            rec.rate_limited = admission.bucket
            rec.response = admission.body()
            return json_response(rec.response, 429, admission.headers)
        try:
            result = await route.handler(rec, **params)
        except DiscordError as err:
            rec.response = err.body()
            resp: web.StreamResponse = json_response(rec.response, err.status)
        else:
            if isinstance(result, web.StreamResponse):
                resp = result
            else:
                rec.response = result
                resp = json_response(result)
        resp.headers.update(admission.headers)
        return resp
