"""uvicorn's HTTP protocol (httptools) with the read timeouts nginx and Triton's front end have.

uvicorn times out idle keep-alive connections only: a client that opens a connection and sends
nothing, half a request line, or a body at a byte a second holds its connection (and a file
descriptor) for as long as it likes. Here the request line and headers must arrive within
`header_timeout` seconds of the request's first byte (or of the connection, when nothing comes),
and the body within `body_timeout` seconds of the headers; otherwise the client gets a 408 and
the connection is closed (a request already running sees the client disconnect: 499).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


class TimedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, waiting_for: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out, waiting_for)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "the request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm(self.header_timeout, "the request headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout, "the request body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _timed_out(self, waiting_for: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        seconds = self.header_timeout if waiting_for.endswith("headers") else self.body_timeout
        if self.cycle is None or not self.cycle.response_started:
            message = f'{{"error": "timed out after {seconds:g} s waiting for {waiting_for}"}}'
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[408],
                        b"content-type: application/json\r\n",
                        b"content-length: %d\r\n" % len(message),
                        b"connection: close\r\n\r\n",
                        message.encode(),
                    ]
                )
            )
        self.transport.close()
