"""Attachments in: downloaded a few at a time, then checked without trusting them.

A request's images are only fetched after the request holds its place in the queue (see
`JobService.admission`), so a full queue or a member over their limit costs no download.
Downloads are capped per member and overall: a member cannot take every connection, and a burst
of requests cannot hold hundreds of 20 MB bodies in the bot's memory at once. Once downloaded, an
image is judged by its header in this process (`probe_image`: format allow-list, dimensions,
pixel limit) and fully decoded only in a disposable child process (`IsolatedDecoder`), before
its job is queued: a bad image is reported at once, and a decoder that crashes or blows up on a
hostile file takes down that child, never the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import aiohttp
import discord

from bot import messages
from bot.errors import BadInput
from stylecore.imageio import ImageError, ImageLimits, IsolatedDecoder

log = logging.getLogger(__name__)


class DownloadSlots:
    """At most `per_member` downloads of one member and `total` downloads overall at once.

    A download takes its member's slot before a shared one, so a member waiting on their own
    cap never holds a place others could use. Members' counters exist only while they download.
    """

    def __init__(self, total: int, per_member: int) -> None:
        if total < 1 or per_member < 1:
            raise ValueError("download caps must be at least 1")
        self.total = total
        self.per_member = per_member
        self._shared = asyncio.Semaphore(total)
        self._members: dict[int, tuple[asyncio.Semaphore, int]] = {}  # member -> (slots, users)
        self.active = 0  # downloads under way
        self.waiting = 0  # downloads waiting for a slot

    @contextlib.asynccontextmanager
    async def slot(self, member_id: int) -> AsyncIterator[None]:
        """Wait for a place for one download of `member_id`, and hold it for the block."""
        own, users = self._members.get(member_id) or (asyncio.Semaphore(self.per_member), 0)
        self._members[member_id] = (own, users + 1)
        try:
            self.waiting += 1
            try:
                await own.acquire()
                try:
                    await self._shared.acquire()
                except BaseException:
                    own.release()
                    raise
            finally:
                self.waiting -= 1
            self.active += 1
            try:
                yield
            finally:
                self.active -= 1
                self._shared.release()
                own.release()
        finally:
            own, users = self._members[member_id]
            if users == 1:
                del self._members[member_id]
            else:
                self._members[member_id] = (own, users - 1)


class Uploads:
    """Fetches a request's attachments within the download caps and checks them out of process."""

    def __init__(self, decoder: IsolatedDecoder, limits: ImageLimits, slots: DownloadSlots) -> None:
        self.decoder = decoder
        self.limits = limits
        self.slots = slots

    async def fetch(self, attachment: discord.Attachment, what: str, member_id: int) -> bytes:
        """The attachment's bytes once they are known to be an image the engine can use;
        BadInput (with a message naming `what`) otherwise."""
        async with self.slots.slot(member_id):
            data = await self._download(attachment, what)
        try:
            await self.decoder.validate(data, self.limits)
        except ImageError as exc:
            log.info("refused the %s %s from member %s: %s", what, attachment.id, member_id, exc)
            raise BadInput(messages.unusable_image(what, exc.user_message)) from None
        return data

    async def fetch_all(self, items: Sequence[tuple[discord.Attachment, str]], member_id: int) -> list[bytes]:
        """A request's images (attachment, how to name it), fetched at once, in order. The first
        problem found stops the other images' work, so a refused request holds no download slot or
        decoding child any longer; with several problems, the first image's is reported (the member
        named it first)."""
        tasks = [asyncio.ensure_future(self.fetch(attachment, what, member_id)) for attachment, what in items]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # a cancelled check ends once its child process is killed
        for task in tasks:
            if not task.cancelled() and (problem := task.exception()) is not None:
                raise problem
        return [task.result() for task in tasks]

    async def keep_copy(self, attachment: discord.Attachment, what: str, member_id: int, max_side: int) -> bytes:
        """An image to keep for long (a server style): downloaded and checked as any upload, and
        kept as the checker's own JPEG copy, long side at most `max_side`, not as the sender's file."""
        async with self.slots.slot(member_id):
            data = await self._download(attachment, what)
        try:
            return await self.decoder.copy(data, self.limits, max_side=max_side)
        except ImageError as exc:
            log.info("refused the %s %s from member %s: %s", what, attachment.id, member_id, exc)
            raise BadInput(messages.unusable_image(what, exc.user_message)) from None

    @staticmethod
    async def _download(attachment: discord.Attachment, what: str) -> bytes:
        try:
            return await attachment.read()
        except discord.NotFound:
            raise BadInput(messages.attachment_gone(what)) from None
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("downloading attachment %s failed: %r", attachment.id, exc)
            raise BadInput(messages.download_failed(what)) from None
