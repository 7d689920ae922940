"""TLS and HTTP/2 for the whole API, served by hypercorn.

The plain-HTTP port is the lean listener, built for latency. When the
server is given a certificate it also listens on a TLS port, where
hypercorn does what it is best at — TLS, HTTP/2 and ALPN — and hands every
request to the same Router that the lean listener uses, so Invoke, function
URLs and the control plane behave identically on both ports.
"""
from __future__ import annotations

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .http1 import Head
from .router import Router


def asgi_front(router: Router):
    """An ASGI app that answers each request with router.handle()."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        if not any(k == "host" for k, _ in headers):
            # HTTP/2 carries the host as :authority; SigV4 signed it as Host.
            for k, v in scope["headers"]:
                if k == b":authority":
                    headers.append(("host", v.decode("latin-1")))
        length = next((int(v) for k, v in headers if k == "content-length" and v.isascii() and v.isdigit()), 0)
        head = Head(scope["method"], target, headers, length, False, True, False)
        limit = router.body_limit(head)
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                status, out_headers, payload = router.too_large(head)
                await _respond(send, status, out_headers, payload)
                return
        client = scope.get("client") or ("", 0)
        status, out_headers, payload = await router.handle(head, bytes(body), (client[0], client[1]))
        await _respond(send, status, out_headers, payload)

    return app


async def _respond(send, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers if k.lower() not in ("connection", "content-length", "transfer-encoding")]
    raw.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


async def serve_tls(router: Router, host: str, port: int, certfile: str, keyfile: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.certfile = certfile
    config.keyfile = keyfile
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = None
    await serve(asgi_front(router), config, task_status=task_status)
