"""Function URLs on the fast path: HTTP in, payload v2 event to the pool,
HTTP out. Reached at /lambda-url/<url-id>/... on the server's own port, or
by Host <url-id>.lambda-url.<region>.localhost."""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from ..errors import LambdaError
from ..execution.call_stream import CallStream
from ..functions.function_settings import FunctionSettings
from ..http.handler import Reply
from ..http.http1 import Head
from ..ids import request_id as new_request_id
from . import streaming, url_events
from .invoke import Invoker
from .sigv4 import AuthError, check_head, verify

URL_PATH_RE = re.compile(r"^/lambda-url/([a-z0-9]{32})(/.*)?$")
URL_HOST_RE = re.compile(r"^([a-z0-9]{32})\.lambda-url\.[a-z0-9-]+\.(?:localhost|on\.aws)(?::\d+)?$")
BODY_MAX = 6 * 1024 * 1024


_FORBIDDEN = msgspec.json.encode({"Message": "Forbidden"})
# AWS's answer to a call its resource policy does not allow.
_NOT_ALLOWED = msgspec.json.encode(
    {
        "Message": "Forbidden. For troubleshooting Function URL authorization issues, see: "
        "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
    }
)
_NOT_FOUND = msgspec.json.encode({"Message": "Not Found"})
_INTERNAL = b"Internal Server Error"


def match(head: Head) -> tuple[str, str, str] | None:
    """(url_id, path the function sees, query) when this request is for a URL."""
    target = head.target
    if target.startswith("/lambda-url/"):
        path, _, query = target.partition("?")
        m = URL_PATH_RE.match(path)
        if m:
            return m.group(1), m.group(2) or "/", query
        return None
    host = head.header("host")
    if host and ".lambda-url." in host:
        m = URL_HOST_RE.match(host)
        if m:
            path, _, query = target.partition("?")
            return m.group(1), path, query
    return None


def _not_allowed(request_id: str) -> Reply:
    """AuthType NONE, but the function's policy does not let everyone call
    it (both lambda:InvokeFunctionUrl and lambda:InvokeFunction, as AWS
    requires): AWS's 403."""
    return (
        403,
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException"), ("x-amzn-RequestId", request_id)],
        _NOT_ALLOWED,
    )


class UrlHandler:
    def __init__(self, settings: FunctionSettings, invoker: Invoker, secrets: Mapping[str, str]) -> None:
        self.settings = settings
        self.invoker = invoker
        self.secrets = secrets

    def precheck(self, head: Head, url_id: str) -> Reply | None:
        """The answer this URL gives from the head alone, before the body is
        read: 404 for no such URL, 403 for an AWS_IAM URL whose signature
        cannot be valid. None: the body is needed (AuthType NONE needs
        nothing more)."""
        target = self.settings.lookup_url(url_id)
        if target is None:
            return 404, [("Content-Type", "application/json"), ("x-amzn-RequestId", new_request_id())], _NOT_FOUND
        if target.config["AuthType"] == "AWS_IAM":
            try:
                check_head(head.method, head.target, head.headers, self.secrets)
            except AuthError:
                return (
                    403,
                    [
                        ("Content-Type", "application/json"),
                        ("x-amzn-ErrorType", "AccessDeniedException"),
                        ("x-amzn-RequestId", new_request_id()),
                    ],
                    _FORBIDDEN,
                )
        elif not target.public:
            return _not_allowed(new_request_id())
        return None

    async def handle(self, head: Head, body: bytes, client: tuple[str, int], url_id: str, path: str, query: str) -> Reply:
        request_id = new_request_id()
        target = self.settings.lookup_url(url_id)
        if target is None:
            return 404, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)], _NOT_FOUND
        config, rec = target.config, target.record
        if config["AuthType"] == "NONE" and not target.public:
            return _not_allowed(request_id)
        cors = config.get("Cors")
        # Without a CORS config the Origin header changes nothing: skip the
        # search through the headers.
        origin = head.header("origin") if cors else None
        if head.method == "OPTIONS":
            answer = url_events.preflight(cors, origin, head.header("access-control-request-method"))
            if answer is not None:
                status, headers, payload = answer
                headers.append(("x-amzn-RequestId", request_id))
                return status, headers, payload
        authorizer = None
        if config["AuthType"] == "AWS_IAM":
            try:
                key = verify(head.method, head.target, head.headers, body, self.secrets)
            except AuthError:
                return (
                    403,
                    [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException"), ("x-amzn-RequestId", request_id)],
                    _FORBIDDEN,
                )
            account = self.settings.service.account
            authorizer = {
                "accessKey": key,
                "accountId": account,
                "callerId": key,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{account}:user/{key}",
                "userId": key,
            }
        service = self.settings.service
        event = url_events.request_event(
            method=head.method,
            raw_path=path,
            raw_query=query,
            headers=head.headers,
            body=body,
            source_ip=client[0],
            url_id=url_id,
            region=service.region,
            account=service.account,
            request_id=request_id,
            authorizer=authorizer,
        )
        extra = url_events.cors_headers(cors, origin)

        def refused(exc: LambdaError) -> Reply:
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", exc.error_type), ("x-amzn-RequestId", request_id), *extra]
            return exc.status, headers, msgspec.json.encode({"Message": exc.message})

        if config.get("InvokeMode") == "RESPONSE_STREAM":
            return await self._streamed(rec, event, request_id, extra, refused)
        try:
            outcome = await self.invoker.pool.invoke(self.invoker.spec_for(rec), event, None, request_id)
        except LambdaError as exc:
            return refused(exc)
        if outcome.function_error:
            return 502, [("Content-Type", "text/plain"), ("x-amzn-RequestId", request_id), *extra], _INTERNAL
        try:
            status, headers, payload = url_events.response_from_result(outcome.payload)
        except url_events.BadResponse:
            return 502, [("Content-Type", "text/plain"), ("x-amzn-RequestId", request_id), *extra], _INTERNAL
        headers.append(("x-amzn-RequestId", request_id))
        headers.extend(extra)
        return status, headers, payload

    async def _streamed(self, rec, event: bytes, request_id: str, extra: list[tuple[str, str]], refused) -> Reply:
        """InvokeMode RESPONSE_STREAM: the answer goes out as the function
        writes it (api/streaming.py)."""
        try:
            spec = self.invoker.spec_for(rec)
        except LambdaError as exc:
            return refused(exc)
        stream = CallStream()
        pool = self.invoker.pool
        self.invoker.nursery.start_soon(streaming.start, lambda: pool.invoke(spec, event, None, request_id, stream), stream)

        def failed(exc: LambdaError | None) -> Reply:
            if exc is not None:
                return refused(exc)
            return 502, [("Content-Type", "text/plain"), ("x-amzn-RequestId", request_id), *extra], _INTERNAL

        return await streaming.answer_url(stream, request_id, extra, failed)
