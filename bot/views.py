"""Buttons and the modal.

Both kinds of button are `DynamicItem`s whose custom_id carries the job id, so they
keep working after a restart without any in-memory view: Cancel on progress messages,
More style / Less style / Re-run on results. Their callbacks only parse and delegate to
the jobs service; errors go through the same handler as slash commands.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from bot.errors import BadInput, handle_interaction_error

if TYPE_CHECKING:
    from bot.bot import StyleBot

JOB_ID = r"[0-9a-f]{6,32}"
AGAIN_ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "more": ("More style", "➕", discord.ButtonStyle.primary),
    "less": ("Less style", "➖", discord.ButtonStyle.secondary),
    "rerun": ("Re-run", "🔁", discord.ButtonStyle.secondary),
}


class CancelButton(ui.DynamicItem[ui.Button[Any]], template=rf"stylebot:cancel:(?P<job>{JOB_ID})"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            ui.Button(
                label="Cancel",
                emoji="✖️",
                style=discord.ButtonStyle.danger,
                custom_id=f"stylebot:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        try:
            interaction.extras["job_id"] = self.job_id
            await interaction.client.jobs.cancel_by(
                self.job_id, interaction.user.id, interaction.permissions, interaction.guild_id
            )
            await interaction.response.send_message(f"Cancelling job `{self.job_id}`.", ephemeral=True)
        except Exception as exc:
            await handle_interaction_error(interaction, exc)


class AgainButton(
    ui.DynamicItem[ui.Button[Any]], template=rf"stylebot:again:(?P<action>more|less|rerun):(?P<job>{JOB_ID})"
):
    def __init__(self, action: str, job_id: str) -> None:
        label, emoji, style = AGAIN_ACTIONS[action]
        super().__init__(
            ui.Button(label=label, emoji=emoji, style=style, custom_id=f"stylebot:again:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> AgainButton:
        return cls(match["action"], match["job"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        try:
            await interaction.client.intake.again(interaction, self.job_id, self.action)
        except Exception as exc:
            await handle_interaction_error(interaction, exc)


def progress_view(job_id: str) -> ui.View:
    view = ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str) -> ui.View:
    view = ui.View(timeout=None)
    for action in AGAIN_ACTIONS:
        view.add_item(AgainButton(action, job_id))
    return view


class StyleModal(ui.Modal, title="Stylize this image"):
    """Asks for the style image (a file upload) and the strength for a context-menu run."""

    def __init__(self, content: discord.Attachment, default_strength: float) -> None:
        super().__init__(timeout=600)
        self.content = content
        self.style_file: ui.FileUpload[Any] = ui.FileUpload(
            custom_id="stylebot:modal:style", required=True, min_values=1, max_values=1
        )
        self.strength: ui.TextInput[Any] = ui.TextInput(
            custom_id="stylebot:modal:strength",
            required=False,
            default=f"{default_strength:g}",
            max_length=6,
            placeholder="1.0 = normal, 2 = stronger",
        )
        self.add_item(
            ui.Label(text="Style image", description="The picture whose style to apply", component=self.style_file)
        )
        self.add_item(
            ui.Label(text="Strength", description="How strongly to apply the style (0–10)", component=self.strength)
        )

    def strength_value(self) -> float | None:
        raw = (self.strength.value or "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise BadInput(f"Strength must be a number like 1.5, not {raw!r}.") from None
        if not 0 <= value <= 10:
            raise BadInput(f"Strength must be between 0 and 10, got {value:g}.")
        return value

    async def on_submit(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        style = self.style_file.values[0] if self.style_file.values else None
        await interaction.client.intake.from_interaction(
            interaction, self.content, style, source="menu", strength=self.strength_value()
        )

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:
        await handle_interaction_error(interaction, error)
