"""Logging setup with a filter that scrubs secrets from every record.

discord.py logs request URLs at debug level, and interaction/webhook URLs embed tokens;
the bot token itself must never reach a log either. The filter rewrites the formatted
message of every record passing through the root handler.
"""

from __future__ import annotations

import logging
import re

_URL_TOKENS = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-:]+")
# Gateway payloads logged at DEBUG carry interaction tokens as a "token" field.
_FIELD_TOKENS = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        text = _URL_TOKENS.sub(r"\1[REDACTED]", text)
        return _FIELD_TOKENS.sub(r"\1[REDACTED]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class RedactingFormatter(logging.Formatter):
    """Scrubs the final text, tracebacks included (the filter alone only sees the message)."""

    def __init__(self, fmt: str, redactor: RedactingFilter) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


def setup_logging(level: str, secrets: list[str]) -> None:
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", redactor))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
