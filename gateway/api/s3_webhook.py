"""Bucket notifications from external S3-compatible stores (MinIO's webhook
target, Ceph RGW's HTTP push endpoint), run as S3 events of a function:

    POST /_lambdalet/s3-events/<FunctionName>[?Qualifier=<alias or version>]
    Authorization: Bearer <token>        (or ?token=<token>, for Ceph)
    {"Records": [<S3 event records>]}

The token is ``<data-dir>/s3-events-token`` (made at first start, 0600);
a request without it is refused from its head, before its body is read.
The records are passed on as the event, unchanged (MinIO's and Ceph's
records are AWS's shape), through the durable async queue, so retries,
destinations and the dead-letter queue apply; the answer (202) comes once
the event is committed. As for the built-in store, the function's
resource policy must let s3.amazonaws.com invoke it for the records'
buckets (AddPermission --principal s3.amazonaws.com).
"""

from __future__ import annotations

import hmac
import os
import pathlib
import secrets
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote

import msgspec

from ..errors import LambdaError
from ..http.http1 import Head
from .invoke import ASYNC_PAYLOAD_MAX

PREFIX = "/_lambdalet/s3-events/"
TOKEN_FILE = "s3-events-token"


def load_or_create_token(data_dir: pathlib.Path) -> str:
    path = data_dir / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    tmp = data_dir / f".{TOKEN_FILE}.tmp-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # a racing start keeps the first token
    except FileExistsError:
        token = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return token


class S3WebhookSurface:
    def __init__(self, token: str, service, queue, allowed: Callable[[str, str, str], bool]) -> None:
        """``allowed(function, qualifier, bucket)``: the function's policy lets
        S3 invoke it for that bucket."""
        self.token = token
        self.service = service
        self.queue = queue
        self.allowed = allowed

    @staticmethod
    def matches(head: Head) -> bool:
        return head.path.startswith(PREFIX)

    def _authorised(self, head: Head) -> bool:
        given = head.header("authorization")
        if given is not None:
            given = given.removeprefix("Bearer ").strip()
        else:
            given = dict(parse_qsl(head.query)).get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    def body_limit(self, head: Head) -> int:
        return ASYNC_PAYLOAD_MAX

    def precheck(self, head: Head):
        if not self._authorised(head):
            return LambdaError("AccessDeniedException", f"A bearer token from the server's data dir ({TOKEN_FILE}) is required.").reply()
        return None

    def too_large(self, head: Head):
        return LambdaError("RequestTooLargeException", f"Request must be smaller than {ASYNC_PAYLOAD_MAX} bytes for an S3 event.").reply()

    def busy(self, head: Head):
        status, headers, body = LambdaError(
            "TooManyRequestsException", "Too many request bodies are arriving at once; retry shortly."
        ).reply()
        return status, headers + [("Retry-After", "1")], body

    def timed_out(self, head: Head):
        return LambdaError("RequestTimeoutException", "The request body was not received in time.").reply()

    async def handle(self, head: Head, body: bytes, client: tuple[str, int]):
        try:
            refusal = self.precheck(head)
            if refusal is not None:
                return refusal
            name = unquote(head.path[len(PREFIX) :]).strip("/")
            qualifier = dict(parse_qsl(head.query)).get("Qualifier")
            rec = self.service.resolve(name, qualifier)
            if head.method in ("GET", "HEAD"):
                # A store's check that the endpoint answers (and the token holds).
                return 200, [("Content-Type", "application/json")], b'{"status":"ok"}'
            if head.method != "POST":
                raise LambdaError("MethodNotAllowedException", f"Method {head.method} is not allowed on {head.path}")
            records = self._records(body)
            for bucket in sorted({r["s3"]["bucket"]["name"] for r in records}):
                if not self.allowed(rec.name, qualifier or "$LATEST", bucket):
                    raise LambdaError(
                        "AccessDeniedException",
                        f"The resource policy of {self.service.arn(rec.name, qualifier)} does not let s3.amazonaws.com invoke it for arn:aws:s3:::{bucket} "
                        "(aws lambda add-permission --principal s3.amazonaws.com ...).",
                    )
            request_id = await self.queue.enqueue(rec, msgspec.json.encode({"Records": records}), ref=name, qualifier=qualifier)
        except LambdaError as exc:
            return exc.reply()
        return 202, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)], b'{"Status":202}'

    @staticmethod
    def _records(body: bytes) -> list[dict]:
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
        records = doc.get("Records") if isinstance(doc, dict) else None
        if not isinstance(records, list) or not records:
            raise LambdaError("InvalidRequestContentException", 'An S3 notification needs a non-empty "Records" list.')
        for r in records:
            bucket = r.get("s3", {}).get("bucket", {}).get("name") if isinstance(r, dict) and isinstance(r.get("s3"), dict) else None
            if not isinstance(bucket, str) or not bucket or not isinstance(r["s3"].get("object"), dict):
                raise LambdaError(
                    "InvalidRequestContentException", "Each record needs s3.bucket.name and s3.object, as S3's event records have."
                )
        return records
