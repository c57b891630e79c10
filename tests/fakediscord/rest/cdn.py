"""The attachment CDN: ``/attachments/{channel}/{id}/{filename}`` and, for slash-command uploads,
``/ephemeral-attachments/{app}/{id}/{filename}``, also under ``/media-proxy`` (the ``proxy_url``)
(https://discord.com/developers/docs/reference#image-formatting-cdn-endpoints). Query parameters
(Discord's signed ``ex``/``is``/``hm``) are accepted and not checked. Deleted or unknown files are 404.
"""

from __future__ import annotations

import re

from aiohttp import web

from ..state import FakeState

_PATH = re.compile(r"(?:/media-proxy)?/(?:ephemeral-)?attachments/\d+/(\d+)/([^/]+)")


class Cdn:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    def serve(self, method: str, path: str) -> web.Response:
        m = _PATH.fullmatch(path)
        if m is None or method not in ("GET", "HEAD"):
            return web.Response(status=404, text="404: Not Found")
        att = self.state.attachments.get(int(m.group(1)))
        if att is None or att.deleted or att.filename != m.group(2):
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(
            body=b"" if method == "HEAD" else att.data,
            headers={
                "Content-Type": att.content_type or "application/octet-stream",
                "Content-Length": str(att.size),
                "Cache-Control": "public, max-age=31536000",
            },
        )
