"""Discord's error answers: a JSON body ``{"message", "code"[, "errors"]}`` with an HTTP status
(https://discord.com/developers/docs/reference#error-messages; codes from
https://discord.com/developers/docs/topics/opcodes-and-status-codes#json-json-error-codes)."""

from __future__ import annotations

from typing import Any


class DiscordError(Exception):
    """Raised inside a handler to answer with Discord's error shape instead of a result."""

    def __init__(self, status: int, message: str, code: int = 0, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def form_error(field_name: str, code: str, message: str) -> DiscordError:
    """400 "Invalid Form Body" (50035) naming the offending field, as Discord reports validation errors."""
    return DiscordError(
        400, "Invalid Form Body", 50035, {field_name: {"_errors": [{"code": code, "message": message}]}}
    )
