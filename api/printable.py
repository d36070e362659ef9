"""What can be written back to a client: strings with NUL and lone surrogates replaced.

Below both the text rule (`api.text`, which refuses such input) and the error shape
(`api.errors`, which echoes a client's input back in details), so neither imports the other.
"""

from __future__ import annotations

import re
from typing import Any

# NUL (PostgreSQL text cannot hold it) and lone surrogates (UTF-8 cannot encode them).
FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def printable(value: str) -> str:
    """`value` with anything that cannot be written as UTF-8 JSON replaced: for echoing a
    client's input back in an error (a location, a key) without the answer itself failing."""
    return FORBIDDEN.sub("\ufffd", value)


def safe_json(value: Any) -> Any:
    """A JSON-ready value with every string made `printable` (keys included)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {safe_json(k): safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value
