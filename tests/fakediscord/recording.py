"""Request recording: tests assert on what the bot actually sent over the wire (including uploaded
bytes), so every request is kept with its parsed body, its answer and when it arrived."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message as _MimeHeaders
from typing import Any

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """Turn ``"/channels/{c}/messages"`` (``{name}`` = one path segment) into a full-match regex.

    Anything else in the string is regular-expression syntax, so ``"/webhooks/.*"`` also works.
    """
    if isinstance(pattern, re.Pattern):
        return pattern
    return re.compile(_PLACEHOLDER.sub("[^/]+", pattern))


def method_matches(wanted: str, method: str) -> bool:
    return wanted == "*" or wanted.upper() == method.upper()


@dataclass
class RecordedFile:
    """One uploaded file part (``files[n]``) of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class RecordedRequest:
    """One HTTP request the fake received.

    ``path`` is relative to ``/api/v10`` for API calls (``api`` True) and the raw path for CDN
    downloads. ``json`` is the JSON body, or the decoded ``payload_json`` part of a multipart body.
    ``status``/``response``/``response_headers`` are filled in once the fake has answered; ``fault``
    marks an injected failure and ``rate_limited`` names the bucket whose 429 answered the request.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    api: bool
    json: Any = None
    files: list[RecordedFile] = field(default_factory=list)
    form: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    fault: bool = False
    rate_limited: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def multipart(self) -> bool:
        return bool(self.files) or bool(self.form)

    @property
    def done(self) -> bool:
        return self.status is not None

    def file_bytes(self, index: int = 0) -> bytes:
        """Bytes of the ``index``-th uploaded file (by ``files[n]`` order)."""
        return self.files[index].data

    def __repr__(self) -> str:
        extra = f" files={[f.filename for f in self.files]}" if self.files else ""
        return f"<RecordedRequest {self.method} {self.path} -> {self.status}{extra}>"


def parse_body(content_type: str, body: bytes) -> tuple[Any, list[RecordedFile], dict[str, str]]:
    """Decode a request body into (json, files, other form fields).

    Multipart is parsed by hand from the raw bytes so uploads are kept byte-exact and the same
    bytes can also be recorded verbatim.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return None, [], {}
    if ctype == "application/json":
        try:
            return json.loads(body), [], {}
        except ValueError:
            return None, [], {}
    if ctype == "multipart/form-data":
        hdr = _MimeHeaders()
        hdr["Content-Type"] = content_type
        boundary = hdr.get_param("boundary")
        if not boundary:
            return None, [], {}
        files: list[RecordedFile] = []
        form: dict[str, str] = {}
        payload: Any = None
        for part in _split_multipart(body, str(boundary).encode()):
            raw_headers, _, content = part.partition(b"\r\n\r\n")
            headers = _MimeHeaders()
            for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip()] = v.strip()
            name = headers.get_param("name", header="content-disposition")
            filename = headers.get_filename()
            name = str(name) if name is not None else ""
            if filename is not None or name.startswith("files["):
                files.append(
                    RecordedFile(
                        field=name,
                        filename=filename,
                        content_type=headers.get("Content-Type"),
                        data=content,
                    )
                )
            else:
                text = content.decode("utf-8", "replace")
                form[name] = text
                if name == "payload_json":
                    try:
                        payload = json.loads(text)
                    except ValueError:
                        payload = None
        files.sort(key=_file_index)
        return payload, files, form
    return None, [], {}


def _file_index(f: RecordedFile) -> int:
    m = re.fullmatch(r"files\[(\d+)\]", f.field)
    return int(m.group(1)) if m else 1_000_000


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    delimiter = b"--" + boundary
    parts: list[bytes] = []
    chunks = body.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2]
        parts.append(chunk)
    return parts


_EXPECTED_CLIENT_LOGS = (
    "PyNaCl is not installed",
    "davey is not installed",
    "We are being rate limited",
    "is rate limited. Retrying",
)


def client_log_problems(records: Iterable[logging.LogRecord], *, level: int = logging.WARNING) -> list[str]:
    """discord.py swallows and logs many failures (payload parse errors in views/modals, exceptions in
    event handlers and app commands, unknown opcodes). Feed this ``caplog.records`` and assert it is
    empty to turn those into test failures; voice-library and rate-limit notices are ignored."""
    out = []
    for rec in records:
        if not rec.name.startswith("discord") or rec.levelno < level:
            continue
        text = rec.getMessage()
        if any(expected in text for expected in _EXPECTED_CLIENT_LOGS):
            continue
        if rec.exc_info and rec.exc_info[1] is not None:
            text += f" [{rec.exc_info[0].__name__ if rec.exc_info[0] else ''}: {rec.exc_info[1]}]"
        out.append(f"{rec.name}:{rec.levelname}: {text}")
    return out
