"""Test-facing modal submission: fill in and submit the modal the bot opened
(https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-modal),
answering each field the way the Discord client fills it in
(https://discord.com/developers/docs/components/reference).

Component types handled: 1 action row, 18 label (wraps one field), 4 text input, 19 file upload,
3/5/6/7/8 selects, 21 radio group, 22 checkbox group, 23 checkbox. The client's own checks apply:
required fields, text length bounds, select options, the file-upload count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core import Context
from ..state import Channel, FakeState, Guild, Interaction, Member, User
from .create import new_interaction
from .resolve import as_user, is_file_tuple, resolve

_MISSING: Any = object()


class ModalSubmitting:
    """Mixed into ``FakeDiscord``; uses its ``ctx`` and ``state``."""

    ctx: Context
    state: FakeState

    async def submit_modal(
        self,
        source: Interaction,
        values: Mapping[str, Any] | None = None,
        *,
        user: User | Member | None = None,
        components: list[dict[str, Any]] | None = None,
        attachments: Sequence[Any] = (),
    ) -> Interaction:
        """Submit the modal the bot opened in response to ``source``.

        ``values`` maps each field's custom_id to: a str (text input, radio), a list of str (selects,
        checkbox group), a bool (checkbox), or a list of ``Attachment``/``(filename, bytes)`` (file
        upload; they are put in ``resolved.attachments`` as Discord does). Unfilled text inputs use
        their prefilled value; a required field left empty raises ValueError (the client would block
        it). ``components`` sends a raw component list instead; ``attachments`` then seeds resolved.
        """
        if source.modal is None:
            raise ValueError(f"interaction {source.id} did not open a modal")
        channel = self.state.channels[source.channel_id or 0]
        guild = self.state.guild_of(channel)
        resolved: dict[str, Any] = {}
        for att in attachments:
            resolve(self.state, att, 11, resolved, guild, channel)
        if components is None:
            components = self._modal_components(
                source.modal.get("components") or [], dict(values or {}), resolved, guild, channel
            )
        data: dict[str, Any] = {"custom_id": source.modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        message = self.state.messages.get(source.message_id) if source.message_id else None
        invoker = as_user(user, source.user)
        return await new_interaction(self.ctx, 5, data, user=invoker, channel=channel, message=message)

    def _modal_components(
        self,
        comps: list[dict[str, Any]],
        values: dict[str, Any],
        resolved: dict[str, Any],
        guild: Guild | None,
        channel: Channel,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for comp in comps:
            t = comp.get("type")
            if t == 1:
                inner = self._modal_components(comp.get("components") or [], values, resolved, guild, channel)
                out.append({"type": 1, "id": comp.get("id"), "components": inner})
            elif t == 18:
                inner = self._modal_components([comp["component"]], values, resolved, guild, channel)
                out.append({"type": 18, "id": comp.get("id"), "component": inner[0]})
            elif "custom_id" in comp:
                out.append(self._modal_field(comp, values, resolved, guild, channel))
            else:
                out.append({"type": t, "id": comp.get("id")})
        return out

    def _modal_field(
        self,
        comp: dict[str, Any],
        values: dict[str, Any],
        resolved: dict[str, Any],
        guild: Guild | None,
        channel: Channel,
    ) -> dict[str, Any]:
        cid = comp["custom_id"]
        t = comp["type"]
        v = values.get(cid, _MISSING)
        base: dict[str, Any] = {"type": t, "id": comp.get("id"), "custom_id": cid}
        required = comp.get("required", True)
        if t == 4:
            text = (comp.get("value") or "") if v is _MISSING else str(v)
            if required and not text:
                raise ValueError(f"required text input {cid!r} was left empty")
            if text and comp.get("min_length") and len(text) < comp["min_length"]:
                raise ValueError(f"text input {cid!r} is shorter than min_length")
            if comp.get("max_length") and len(text) > comp["max_length"]:
                raise ValueError(f"text input {cid!r} is longer than max_length")
            base["value"] = text
        elif t == 19:
            items = [] if v is _MISSING else list(v if isinstance(v, (list, tuple)) and not is_file_tuple(v) else [v])
            if required and not items:
                raise ValueError(f"required file upload {cid!r} has no files")
            max_values = comp.get("max_values") or 1
            if len(items) > max_values:
                raise ValueError(f"file upload {cid!r} takes at most {max_values} files")
            base["values"] = [resolve(self.state, a, 11, resolved, guild, channel) for a in items]
        elif t in (3, 5, 6, 7, 8, 22):
            items = [] if v is _MISSING else list(v)
            if required and t != 22 and not items and (1 if comp.get("min_values") is None else comp["min_values"]) > 0:
                raise ValueError(f"required select {cid!r} has no values")
            if t == 3:
                allowed = [o["value"] for o in comp.get("options", [])]
                bad = [x for x in items if x not in allowed]
                if bad:
                    raise ValueError(f"{bad} are not options of {cid!r}")
                base["values"] = [str(x) for x in items]
            elif t == 22:
                base["values"] = [str(x) for x in items]
            else:
                base["values"] = [resolve(self.state, x, 0, resolved, guild, channel) for x in items]
        elif t == 21:
            base["value"] = None if v is _MISSING else str(v)
        elif t == 23:
            base["value"] = False if v is _MISSING else bool(v)
        return base
