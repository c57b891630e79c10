"""Credentials stay out of workers: the environment a child starts with, and log records."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from stylecore.executors.redaction import REDACTED, Redactor, child_environ, install_log_redaction, scrub_environ

# Shaped like a signed bearer token (three base64url segments); made up for these tests.
TOKEN_SHAPED = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"


def test_known_values_and_credential_shapes_are_replaced() -> None:
    redact = Redactor(["sw0rdfish-in-the-env", "short"])
    text = redact(
        f"login with {TOKEN_SHAPED} as sw0rdfish-in-the-env; Authorization: Bot abc.def "
        'password=hunter2, {"api_key": "k-123"} token=xyz short'
    )
    for secret in (TOKEN_SHAPED, "sw0rdfish-in-the-env", "abc.def", "hunter2", "k-123", "xyz"):
        assert secret not in text
    assert text.count(REDACTED) == 6
    assert "password=" in text and "Authorization: Bot" in text  # what was there stays readable
    assert text.endswith(" short")  # too short to be treated as a secret
    plain = "job abc123 ran 40 steps at 0.25 s/step on cuda:0 (1024x768)"
    assert redact(plain) == plain


@pytest.fixture
def captured_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing to a buffer, with the record factory restored afterwards."""
    factory = logging.getLogRecordFactory()
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logger = logging.getLogger("test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, buf
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(factory)


def test_every_log_record_is_redacted_whatever_its_handler(captured_log) -> None:
    logger, buf = captured_log
    install_log_redaction(["sw0rdfish-in-the-env"])
    logger.warning("starting with %s and token=%s", "sw0rdfish-in-the-env", TOKEN_SHAPED)
    try:
        raise RuntimeError(f"bad credentials {TOKEN_SHAPED}")
    except RuntimeError:
        logger.exception("request failed")
    out = buf.getvalue()
    assert TOKEN_SHAPED not in out and "sw0rdfish-in-the-env" not in out
    assert "starting with [redacted] and token=[redacted]" in out
    assert "RuntimeError: bad credentials [redacted]" in out  # the traceback too


def test_a_child_starts_without_the_secret_and_the_parent_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_TEST_SECRET", "sw0rdfish-in-the-env")
    probe = "import os; print(os.environ.get('STYLEBOT_TEST_SECRET'), os.environ.get('SET_FOR_CHILD'))"
    with child_environ({"SET_FOR_CHILD": "yes"}, ["STYLEBOT_TEST_SECRET"]):
        child = subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=60)
    assert out.split() == ["None", "yes"]
    assert os.environ["STYLEBOT_TEST_SECRET"] == "sw0rdfish-in-the-env" and "SET_FOR_CHILD" not in os.environ


def test_scrub_environ_removes_and_returns_what_it_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_TEST_SECRET", "sw0rdfish-in-the-env")
    monkeypatch.delenv("STYLEBOT_TEST_ABSENT", raising=False)
    assert scrub_environ(["STYLEBOT_TEST_SECRET", "STYLEBOT_TEST_ABSENT"]) == {
        "STYLEBOT_TEST_SECRET": "sw0rdfish-in-the-env"
    }
    assert "STYLEBOT_TEST_SECRET" not in os.environ
