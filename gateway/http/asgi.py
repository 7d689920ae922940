"""Runs an ASGI app for one already-read HTTP/1.1 request, in process.

The lean listener owns the socket; control-plane requests are handed to the
quart-trio app through this bridge, which is the part of an ASGI server the
control plane needs (no streaming, no websockets).
"""

from __future__ import annotations

import urllib.parse

import trio

from .http1 import Head


async def call_asgi(
    app, head: Head, body: bytes, client: tuple[str, int], server: tuple[str, int], state: dict | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """state: the ASGI scope's "state", where the caller hands the app what
    it decided before the request got here (the console's session)."""
    path, _, query = head.target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": head.method,
        "scheme": "http",
        "path": urllib.parse.unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head.headers],
        "client": client,
        "server": server,
        "extensions": {},
        "state": state if state is not None else {},
    }
    sent_body = False
    status = 500
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []
    done = trio.Event()

    async def receive():
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        # The client stays connected until the response is sent.
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", []):
                name = k.decode("latin-1")
                if name.lower() not in ("content-length", "connection", "date", "server", "transfer-encoding"):
                    headers.append((name, v.decode("latin-1")))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    return status, headers, b"".join(chunks)
