"""Which service a request is for, and what a service answers with.

One port serves Lambda, S3 and SQS, as LocalStack users expect from one
AWS_ENDPOINT_URL. Every signed request names its service in the SigV4
credential scope (``Credential=AKID/20250101/us-east-1/s3/aws4_request``,
in the Authorization header or, presigned, in X-Amz-Credential); an
unsigned request is S3 when its Host is a bucket's virtual host, SQS when
it carries SQS's X-Amz-Target, and otherwise Lambda's. Looking costs a
scan of the headers, and the router does it only for requests that are
not an Invoke, so the data plane's path is unchanged. An unsigned request
under /console is the web console's (console/surface.py).
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import unquote

from ..http.handler import Handler
from ..http.http1 import Head


class Surface(Handler, Protocol):
    """A service's HTTP answers, in the fronts' shape (http/handler.py):
    what a request may send, what it is told before its body is read, and
    its answer."""


def scope_parts(head: Head) -> list[str] | None:
    """The credential scope [key, date, region, service, aws4_request] a
    request claims, or None when it claims none."""
    auth = head.header("authorization")
    if auth is not None:
        at = auth.find("Credential=")
        if at < 0:
            return None
        end = auth.find(",", at)
        credential = auth[at + 11 : end if end >= 0 else len(auth)].strip()
    else:
        query = head.query
        at = query.find("X-Amz-Credential=")
        if at < 0:
            return None
        end = query.find("&", at)
        credential = unquote(query[at + 17 : end if end >= 0 else len(query)])
    parts = credential.split("/")
    return parts if len(parts) == 5 else None


def _signed_v2(head: Head) -> bool:
    auth = head.header("authorization")
    if auth is not None:
        return auth.startswith("AWS ")
    query = head.query
    return "AWSAccessKeyId=" in query and "Signature=" in query


class ServiceRoutes:
    """The surfaces other than Lambda's, by service name."""

    def __init__(
        self,
        *,
        s3: Surface | None = None,
        sqs: Surface | None = None,
        s3_virtual_host=None,
        console: Surface | None = None,
        s3_webhook: Surface | None = None,
    ) -> None:
        self.s3 = s3
        self.sqs = sqs
        self.console = console
        # External stores' notifications: a path of Lambdalet's, bearer-token auth.
        self.s3_webhook = s3_webhook
        # head -> bucket name or None, for unsigned requests to a bucket's host
        self._s3_virtual_host = s3_virtual_host
        self._last: tuple[Head, Surface | None] | None = None

    def surface_for(self, head: Head) -> Surface | None:
        """None: Lambda's (the router's own) handling."""
        last = self._last
        if last is not None and last[0] is head:
            return last[1]
        found = self._classify(head)
        self._last = (head, found)
        return found

    def _classify(self, head: Head) -> Surface | None:
        if self.s3_webhook is not None and head.path.startswith("/_lambdalet/s3-events/"):
            return self.s3_webhook
        parts = scope_parts(head)
        if parts is not None:
            service = parts[3]
            if service == "s3":
                return self.s3
            if service == "sqs":
                return self.sqs
            return None
        if self.s3 is not None and _signed_v2(head):
            return self.s3  # S3's legacy signature: no other service here uses it
        if self.sqs is not None:
            target = head.header("x-amz-target")
            if target is not None and target.startswith("AmazonSQS."):
                return self.sqs
        if self.s3 is not None and self._s3_virtual_host is not None and self._s3_virtual_host(head) is not None:
            return self.s3
        if self.console is not None:
            path = head.path
            if path == "/console" or path.startswith("/console/"):
                return self.console
        return None
