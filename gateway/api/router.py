"""Which code answers a request, and the single place auth is checked.

The data plane (Invoke, health) is answered directly; requests for the
other services on this port (the built-in S3 and SQS, told apart by
api/services.py) go to their surfaces; everything else goes to the
control-plane ASGI app.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from ..errors import LambdaError
from ..http.asgi import call_asgi
from ..http.handler import Reply
from ..http.http1 import Head
from ..ids import request_id as new_request_id
from . import url_handler
from .invoke import Invoker
from .invoke import body_limit as invoke_body_limit
from .invoke import too_large as invoke_too_large
from .services import ServiceRoutes
from .sigv4 import AuthError, check_head, verify

INVOKE_RE = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations/?$")
STREAM_INVOKE_RE = re.compile(r"^/2021-11-15/functions/([^/?]+)/response-streaming-invocations/?$")
CONTROL_BODY_MAX = 80 * 1024 * 1024  # a 50 MB zip, base64-encoded, inside JSON
_HEALTH = msgspec.json.encode({"status": "ok"})


def error_reply(exc: LambdaError, request_id: str | None = None) -> Reply:
    return exc.reply(request_id)


def auth_reply(exc: AuthError) -> Reply:
    """A refused signature, in the shape botocore parses (type in a header,
    ``message`` in the body)."""
    return (
        403,
        [("x-amzn-ErrorType", exc.code), ("Content-Type", "application/json"), ("x-amzn-RequestId", new_request_id())],
        msgspec.json.encode({"message": exc.message}),
    )


def _is_unsigned(method: str, path: str) -> bool:
    """Paths answered without a signature. None of them takes a body."""
    # /metrics is unsigned: Prometheus scrapers cannot sign SigV4. It holds
    # counts per function name, no payloads or logs, and the server binds
    # loopback unless told otherwise. Code links carry their own token.
    return path == "/health" or path.startswith("/_lambdalet/code/") or (path == "/metrics" and method == "GET")


class Router:
    def __init__(
        self,
        invoker: Invoker,
        control_app,
        secrets: Mapping[str, str] | None,
        server_addr: tuple[str, int],
        urls: url_handler.UrlHandler | None = None,
        services: ServiceRoutes | None = None,
    ) -> None:
        self.invoker = invoker
        self.services = services
        self.urls = urls
        self.control_app = control_app
        self.secrets = secrets  # None: --no-auth
        self.server_addr = server_addr
        # The function URL match body_limit() made, kept for handle() of the
        # same head: the listener asks for the limit, then, usually without
        # yielding in between, for the answer. Holding the head makes the
        # identity check safe; any other head is matched afresh.
        self._last_match: tuple[Head, tuple[str, str, str] | None] | None = None

    def _url_match(self, head: Head) -> tuple[str, str, str] | None:
        last = self._last_match
        if last is not None and last[0] is head:
            self._last_match = None
            return last[1]
        return url_handler.match(head)

    def body_limit(self, head: Head) -> int:
        if self.urls is not None:
            url = url_handler.match(head)
            self._last_match = (head, url)
            if url is not None:
                return url_handler.BODY_MAX
        if head.method == "POST" and (INVOKE_RE.match(head.path) or STREAM_INVOKE_RE.match(head.path)):
            return invoke_body_limit(head)
        if self.services is not None:
            surface = self.services.surface_for(head)
            if surface is not None:
                return surface.body_limit(head)
        if _is_unsigned(head.method, head.path):
            return 0
        return CONTROL_BODY_MAX

    def _is_url(self, head: Head) -> bool:
        return self.urls is not None and url_handler.match(head) is not None

    # The answers below come before a request's body has been read (or
    # instead of reading the rest of it); the listener closes the
    # connection after sending them.

    def _surface(self, head: Head):
        if self.services is None or (head.method == "POST" and INVOKE_RE.match(head.path)):
            return None
        return self.services.surface_for(head)

    def too_large(self, head: Head) -> Reply:
        if self._is_url(head):
            return (
                413,
                [("Content-Type", "application/json"), ("x-amzn-ErrorType", "RequestTooLargeException")],
                msgspec.json.encode({"Message": f"Request must be smaller than {url_handler.BODY_MAX} bytes"}),
            )
        surface = self._surface(head)
        if surface is not None:
            return surface.too_large(head)
        if INVOKE_RE.match(head.path) or STREAM_INVOKE_RE.match(head.path):
            return error_reply(invoke_too_large(head))
        if _is_unsigned(head.method, head.path):
            return error_reply(LambdaError("RequestTooLargeException", f"{head.method} {head.path} takes no request body"))
        return error_reply(LambdaError("RequestTooLargeException", f"Request must be smaller than {CONTROL_BODY_MAX} bytes"))

    def precheck(self, head: Head) -> Reply | None:
        """The refusal a request gets from its head alone, before its body
        is read: a signature that cannot be valid (missing, malformed, an
        unknown key, out of scope or out of date), or a function URL that
        does not exist. None when only the body can decide."""
        if self.urls is not None:
            last = self._last_match
            url = last[1] if last is not None and last[0] is head else url_handler.match(head)
            if url is not None:
                return self.urls.precheck(head, url[0])
        surface = self._surface(head)
        if surface is not None:
            return surface.precheck(head)
        if self.secrets is None or _is_unsigned(head.method, head.path):
            return None
        try:
            check_head(head.method, head.target, head.headers, self.secrets)
        except AuthError as exc:
            return auth_reply(exc)
        return None

    def busy(self, head: Head) -> Reply:
        """The server holds as many unauthenticated bytes as it may."""
        message = "Too many request bodies are arriving at once; retry shortly."
        surface = self._surface(head)
        if surface is not None:
            return surface.busy(head)
        if self._is_url(head):
            return (
                429,
                [("Content-Type", "application/json"), ("x-amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", "1")],
                msgspec.json.encode({"Message": message}),
            )
        status, headers, payload = error_reply(LambdaError("TooManyRequestsException", message))
        headers.append(("Retry-After", "1"))
        return status, headers, payload

    def timed_out(self, head: Head) -> Reply:
        """The request body did not arrive in time."""
        message = "The request body was not received in time."
        surface = self._surface(head)
        if surface is not None:
            return surface.timed_out(head)
        if self._is_url(head):
            return (
                408,
                [("Content-Type", "application/json"), ("x-amzn-ErrorType", "RequestTimeoutException")],
                msgspec.json.encode({"Message": message}),
            )
        return error_reply(LambdaError("RequestTimeoutException", message))

    async def handle(self, head: Head, body: bytes, client: tuple[str, int]) -> Reply:
        path = head.path
        if self.urls is not None:
            # Function URLs carry their own auth type (NONE or AWS_IAM).
            url = self._url_match(head)
            if url is not None:
                return await self.urls.handle(head, body, client, *url)
        invoke = INVOKE_RE.match(path)
        if self.services is not None and not (invoke is not None and head.method == "POST"):
            # Before /health and the unsigned paths: a bucket may be named
            # "health" or "metrics".
            surface = self.services.surface_for(head)
            if surface is not None:
                return await surface.handle(head, body, client)
        if path == "/health":
            return 200, [("Content-Type", "application/json")], _HEALTH
        try:
            if self.secrets is not None and not _is_unsigned(head.method, path):
                try:
                    verify(head.method, head.target, head.headers, body, self.secrets)
                except AuthError as exc:
                    return auth_reply(exc)
            m = invoke
            if m is not None:
                if head.method != "POST":
                    raise LambdaError("MethodNotAllowedException", f"Method {head.method} is not allowed on {path}")
                return await self.invoker.handle(head, m.group(1), body)
            m = STREAM_INVOKE_RE.match(path)
            if m is not None:
                if head.method != "POST":
                    raise LambdaError("MethodNotAllowedException", f"Method {head.method} is not allowed on {path}")
                return await self.invoker.handle_stream(head, m.group(1), body, error_reply)
        except LambdaError as exc:
            return error_reply(exc)
        status, headers, payload = await call_asgi(self.control_app, head, body, client, self.server_addr)
        if not any(k.lower() == "x-amzn-requestid" for k, _ in headers):
            headers.append(("x-amzn-RequestId", new_request_id()))
        return status, headers, payload
