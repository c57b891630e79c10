"""Keeping the caller's credentials out of workers: their environment and their logs.

Workers run untrusted images through a large native stack; they need no credentials of the
process that started them, so the variables named in `ExecutorConfig.secret_env` are left
out of a local worker's environment and removed from a Ray actor's (whose environment comes
from however the cluster was started). Whatever still reaches a worker's log - a value a
cluster's environment held, or a credential-shaped string from anywhere - is replaced before
any handler sees the record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping

REDACTED = "[redacted]"
# Values shorter than this are not treated as secrets: redacting "1" or "on" everywhere would
# mangle the log without protecting anything.
MIN_SECRET_LENGTH = 8

# Credential shapes, whoever issued them: three dot-separated base64url segments (JSON Web
# Tokens, RFC 7519, and other signed bearer tokens of that layout), an HTTP Authorization
# header's credentials (RFC 9110 §11.6.2), and `key=value` pairs whose key names a secret.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"(?i)(\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:bot|bearer|basic)?\s*)[^\s\"',;]+"), r"\1" + REDACTED),
    (
        re.compile(r"(?i)(\b[\w-]*(?:token|secret|password|passwd|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+"),
        r"\1" + REDACTED,
    ),
)


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def child_environ(set_vars: Mapping[str, str] | None = None, remove: Iterable[str] = ()) -> Iterator[None]:
    """Processes started inside the block get `set_vars` and lack `remove`; this process's
    environment is restored on the way out.

    A child process copies its parent's environment when it starts, so this is the only way
    to start one without a variable, from its first instruction on, rather than deleting it
    later. One block at a time, so that two starts cannot restore each other's changes.
    """
    set_vars = dict(set_vars or {})
    remove = tuple(remove)
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in (*set_vars, *remove)}
        for k in remove:
            os.environ.pop(k, None)
        os.environ.update(set_vars)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def scrub_environ(names: Iterable[str]) -> dict[str, str]:
    """Remove `names` from this process's environment; returns the values that were there."""
    found = {}
    for name in names:
        value = os.environ.pop(name, None)
        if value is not None:
            found[name] = value
    return found


class Redactor:
    """Replaces known secret values and credential-shaped strings in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.values = sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def scrub(self, record: logging.LogRecord) -> logging.LogRecord:
        """Redact a record's message and traceback in place (formatting them now)."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format/args pair: logging reports it; keep the raw text
            message = f"{record.msg} {record.args}"
        record.msg = self(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self(record.exc_text)
        if record.stack_info:
            record.stack_info = self(record.stack_info)
        return record


def install_log_redaction(values: Iterable[str] = ()) -> Redactor:
    """Redact every log record this process creates, whatever logger or handler it goes to.

    It wraps the record factory (rather than filtering handlers) so that handlers added later,
    by a setup hook or by Ray, are covered too.
    """
    redactor = Redactor(values)
    make_record = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        return redactor.scrub(make_record(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    return redactor


__all__ = ["REDACTED", "Redactor", "child_environ", "install_log_redaction", "scrub_environ"]
