"""A small HTTP/1.1 client for the OTLP sink: h11's state machine over a
trio stream, one kept-alive connection, opened again after any failure."""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import h11
import trio

MAX_RESPONSE_BYTES = 1 << 20  # an OTLP answer is a small protobuf; more is a broken receiver


class HttpError(Exception):
    """The exchange failed before a whole response came back."""


class HttpClient:
    def __init__(self, scheme: str, host: str, port: int, *, timeout_s: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self._host_header = (f"[{host}]" if ":" in host else host) + (
            "" if (scheme, port) in (("http", 80), ("https", 443)) else f":{port}"
        )
        self._stream: trio.abc.Stream | None = None
        self._conn: h11.Connection | None = None

    async def post(self, path: str, body: bytes, content_type: str, extra_headers: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes]:
        """(status, body) of one POST. Raises HttpError when no response
        came back (refused, reset, timed out, not HTTP)."""
        try:
            with trio.fail_after(self.timeout_s):
                return await self._exchange(path, body, content_type, extra_headers)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, h11.ProtocolError, ssl.SSLError) as exc:
            await self.aclose()
            raise HttpError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None

    async def _exchange(self, path: str, body: bytes, content_type: str, extra_headers: Sequence[tuple[str, str]]) -> tuple[int, bytes]:
        conn, stream = await self._connection()
        headers = [
            ("Host", self._host_header),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("User-Agent", "lambdalet-export"),
            *extra_headers,
        ]
        await stream.send_all(
            conn.send(h11.Request(method="POST", target=path, headers=headers))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )
        status = 0
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(bytes(data))  # b"": the peer closed; h11 then raises or ends the message
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_RESPONSE_BYTES:
                    raise h11.RemoteProtocolError("response body too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed before the response")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.aclose()
        return status, b"".join(chunks)

    async def _connection(self) -> tuple[h11.Connection, trio.abc.Stream]:
        """The kept-alive connection, opened if there is none (aclose drops
        the stream and its h11 state together)."""
        if self._stream is None or self._conn is None:
            stream: trio.abc.Stream
            if self.scheme == "https":
                context = self.ssl_context or ssl.create_default_context()
                stream = await trio.open_ssl_over_tcp_stream(self.host, self.port, ssl_context=context)
            else:
                stream = await trio.open_tcp_stream(self.host, self.port)
            self._stream, self._conn = stream, h11.Connection(our_role=h11.CLIENT)
        return self._conn, self._stream

    async def aclose(self) -> None:
        stream, self._stream, self._conn = self._stream, None, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
