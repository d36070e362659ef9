"""uvicorn's sans-I/O websockets protocol, answering handshakes it cannot parse.

websockets refuses an upgrade request whose request line or a header line is longer than its
limit (8 KiB, `WEBSOCKETS_MAX_LINE_LENGTH`), for instance a URL with a very long `?token=`: it
prepares a 414 (or 431) answer and stops parsing. uvicorn (0.54) only writes what websockets
prepares when an event comes out of the parser, and a refused handshake produces none, so the
client waited forever on an open connection. This protocol sends that answer and closes.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.handshake_complete or self.conn.handshake_exc is None:
            return
        # The handshake was refused while parsing: write websockets' answer (414 or 431; for
        # a request that is not HTTP at all, nothing) and hang up.
        output = self.conn.data_to_send()
        if not self.transport.is_closing():
            self.transport.write(b"".join(output))
            self.transport.close()
