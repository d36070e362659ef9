"""What every public live socket does at its edges: refuse with an `error` frame and a close
code, and notice that the client went away (these sockets never need what clients send)."""

from __future__ import annotations

import contextlib

import orjson
from fastapi import WebSocket, WebSocketDisconnect

TRY_AGAIN_LATER = 1013

# Close codes by error code: 44xx mirror the HTTP status of the same error.
CLOSE_CODES = {
    "unauthorized": 4401,
    "show_not_found": 4404,
    "not_in_line": 4404,
    "not_in_queue": 4404,
    "no_queue": 4404,
    "unavailable": TRY_AGAIN_LATER,
}


async def close_with_error(websocket: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.send_text(
            orjson.dumps({"type": "error", "code": code, "message": message}).decode()
        )
        await websocket.close(code=CLOSE_CODES.get(code, 4400))


async def until_closed(websocket: WebSocket) -> None:
    """Read and drop whatever the client sends; return when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
