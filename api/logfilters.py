"""Log records a client can cause at will, kept to one line.

uvicorn's websockets protocol answers a text frame that is not UTF-8 correctly (close 1007) but
logs it with a full traceback. Any client can send such frames, so each would put a traceback
in the log: noise that buries real failures and that a client can use to fill the disk.
"""

from __future__ import annotations

import logging


class ClientProtocolErrors(logging.Filter):
    """Turns uvicorn's traceback for a client's invalid UTF-8 frame into a one-line warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UnicodeDecodeError) and record.getMessage().startswith("Invalid UTF-8"):
            record.msg = f"{record.getMessage()} Closed it with 1007 ({exc.reason})."
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# One instance: installing it again (one app per test) leaves a single filter on the logger.
CLIENT_PROTOCOL_ERRORS = ClientProtocolErrors()


def install() -> None:
    logging.getLogger("uvicorn.error").addFilter(CLIENT_PROTOCOL_ERRORS)
