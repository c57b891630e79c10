"""The gallery: /styles shows every style a member can pick by name, and admins add their server's own.

`/styles` answers with one picture, a grid of the built-in paintings and this server's styles with
their names under them (members choose by sight, not by title), and the paintings' attributions in
text. `/stylebot style add|remove|list` manage the server's styles: an upload is checked like any
other (the same caps and out-of-process decoding) and kept as the checker's own small JPEG copy,
never as the sender's file. The commands join the `/stylebot` group the admin feature owns.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import messages
from bot.checks import admin_only, check_attachment
from bot.contexts import servers_and_bot_dms
from bot.db.server_styles import ServerStyle, StyleNameTaken, TooManyStyles
from bot.errors import BadInput, OverLimit
from stylecore import gallery

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)

STYLE_SIDE = 1024  # long side of a kept server style: the engine resizes styles to the output anyway
NAME_LENGTH = 32


def sheet(paintings: list[gallery.Painting], own: list[ServerStyle]) -> bytes:
    """The contact sheet of `paintings` and the server's `own` styles (blocking: run it in a thread)."""
    items = [(p.title, gallery.load(p.key)) for p in paintings] + [(s.name, s.image) for s in own]
    return gallery.contact_sheet(items, columns=4, thumb=160)


def check_name(name: str) -> str:
    """A new style's name: short, not empty once folded, and not a gallery painting's name."""
    clean = " ".join(name.split())
    if not clean or not gallery.fold_name(clean) or len(clean) > NAME_LENGTH:
        raise BadInput(messages.bad_style_name(NAME_LENGTH))
    try:
        painting = gallery.get(clean)
    except gallery.UnknownPainting:
        return clean
    raise BadInput(messages.name_of_a_painting(painting.label))


class StyleCommands(app_commands.Group):
    """`/stylebot style ...`: a server's own styles."""

    def __init__(self, bot: StyleBot) -> None:
        super().__init__(name="style", description="This server's own styles, picked by name like the paintings")
        self.bot = bot

    @app_commands.command(name="add", description="Add a style members can pick by name (Manage Server)")
    @app_commands.describe(name="What members type or pick (up to 32 characters)", image="The style image")
    @admin_only()
    async def add(self, interaction: discord.Interaction[StyleBot], name: str, image: discord.Attachment) -> None:
        assert interaction.guild_id is not None
        styles = self.bot.styles
        clean = check_name(name)
        if await styles.get(interaction.guild_id, clean) is not None:
            raise BadInput(messages.style_name_taken(clean))
        if len(await styles.names(interaction.guild_id)) >= styles.cap:
            raise OverLimit(messages.too_many_server_styles(styles.cap))
        check_attachment(image, "style image", self.bot.config.max_input_bytes)
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.bot.jobs.uploads.keep_copy(image, "style image", interaction.user.id, STYLE_SIDE)
        try:
            await styles.add(interaction.guild_id, clean, data, interaction.user.id)
        except StyleNameTaken:
            raise BadInput(messages.style_name_taken(clean)) from None
        except TooManyStyles as full:
            raise OverLimit(messages.too_many_server_styles(full.cap)) from None
        log.info("guild %s: %s added the style %r", interaction.guild_id, interaction.user.id, clean)
        await interaction.followup.send(messages.style_added(clean), ephemeral=True)

    @app_commands.command(name="remove", description="Remove one of this server's styles (Manage Server)")
    @app_commands.describe(name="The style to remove")
    @admin_only()
    async def remove(self, interaction: discord.Interaction[StyleBot], name: str) -> None:
        assert interaction.guild_id is not None
        if not await self.bot.styles.remove(interaction.guild_id, name):
            raise BadInput(messages.no_server_style(name))
        log.info("guild %s: %s removed the style %r", interaction.guild_id, interaction.user.id, name)
        await interaction.response.send_message(messages.style_removed(name), ephemeral=True)

    @remove.autocomplete("name")
    async def remove_autocomplete(
        self, interaction: discord.Interaction[StyleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        wanted = gallery.fold_name(current)
        names = await self.bot.styles.names(interaction.guild_id)
        return [app_commands.Choice(name=n, value=n) for n in names if wanted in gallery.fold_name(n)][:25]

    @app_commands.command(name="list", description="This server's own styles, as a picture")
    async def list_(self, interaction: discord.Interaction[StyleBot]) -> None:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        own = await self.bot.styles.all(interaction.guild_id)
        if not own:
            await interaction.response.send_message(messages.no_server_styles(self.bot.styles.cap), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        png = await asyncio.to_thread(sheet, [], own)
        text = messages.server_styles_listing([(s.name, s.added_by) for s in own], self.bot.styles.cap)
        await interaction.followup.send(
            text,
            file=discord.File(
                io.BytesIO(png), filename="server-styles.png", description=messages.sheet_alt_text(len(own))
            ),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


class Gallery(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self.style_commands = StyleCommands(bot)

    async def cog_load(self) -> None:
        """Join `/stylebot`, which the admin feature owns (loaded before this one)."""
        group = self.bot.tree.get_command("stylebot")
        assert isinstance(group, app_commands.Group), "the admin feature loads first"
        group.add_command(self.style_commands)

    async def cog_unload(self) -> None:
        group = self.bot.tree.get_command("stylebot")
        if isinstance(group, app_commands.Group):
            group.remove_command(self.style_commands.name)

    @app_commands.command(name="styles", description="See the paintings and this server's styles you can pick")
    @servers_and_bot_dms
    async def styles(self, interaction: discord.Interaction[StyleBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        paintings = gallery.paintings()
        own = [] if interaction.guild_id is None else await self.bot.styles.all(interaction.guild_id)
        png = await asyncio.to_thread(sheet, paintings, own)
        await interaction.followup.send(
            messages.gallery_listing([p.credit for p in paintings], [s.name for s in own]),
            file=discord.File(
                io.BytesIO(png), filename="styles.png", description=messages.sheet_alt_text(len(paintings) + len(own))
            ),
            ephemeral=True,
        )


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Gallery(bot))
