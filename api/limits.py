"""Request body limits: a body over the limit is refused with 413 before it is read whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

# The largest legitimate body is a chat message of 100,000 characters, which JSON-escaped
# astral characters can stretch to about 1.2 MB; 2 MiB leaves room and still bounds memory.
MAX_BODY_BYTES = 2 * 1024 * 1024
DRAIN_AT_MOST_BYTES = 64 * 1024 * 1024


class BodyTooLargeError(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._drain(receive, declared)
                    await self._refuse(send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            # A chunked body grew past the limit while being read.
            if not started:
                await self._refuse(send)

    async def _drain(self, receive: Receive, declared: int) -> None:
        # Answer only after the client has finished sending: a server that answers mid-upload
        # and closes makes most clients report a reset instead of the 413. Bodies far past
        # the limit are not worth reading; those connections are simply closed after.
        if declared > DRAIN_AT_MOST_BYTES:
            return
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    async def _refuse(self, send: Send) -> None:
        import orjson

        body = orjson.dumps(
            error_body(
                "too_large",
                f"the request body is larger than {self.max_bytes} bytes",
                {"max_bytes": self.max_bytes},
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
