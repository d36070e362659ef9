"""A client's invalid UTF-8 frame costs one log line, not a traceback."""

from __future__ import annotations

import logging

import pytest

from api import logfilters


def test_a_clients_invalid_utf8_frame_is_logged_as_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logfilters.install()
    logfilters.install()  # once per app; the logger keeps one filter
    logger = logging.getLogger("uvicorn.error")
    assert logger.filters.count(logfilters.CLIENT_PROTOCOL_ERRORS) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        try:
            b"\xff".decode()
        except UnicodeDecodeError:
            logger.exception("Invalid UTF-8 sequence received from client.")
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "Traceback" not in caplog.text
    assert "1007" in record.getMessage()


def test_other_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logfilters.install()
    logger = logging.getLogger("uvicorn.error")
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        try:
            b"\xff".decode()
        except UnicodeDecodeError:
            logger.exception("Exception in ASGI application")
    [record] = caplog.records
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert record.exc_info[0] is UnicodeDecodeError
    assert "Traceback" in caplog.text
