"""S3 requests, from head to reply: the Surface the router hands them to.

Before the body: the signature's head checks (S3's codes), and the size an
upload declares (EntityTooLarge from Content-Length or
X-Amz-Decoded-Content-Length, against --s3-max-object-mb and the quota).
With the body: the signature over it (or its chunks), then one operation,
chosen by method, bucket, key and sub-resource as S3 chooses it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping

import trio

from ...events.s3.errors import S3Error
from ...events.s3.notifications import FunctionConfig, RequestContext
from ...events.s3.store import ObjectStore
from ...http.http1 import Head
from ..sigv4 import Claim
from . import auth, buckets, multipart, objects
from .addressing import Address, address, virtual_bucket
from .replies import Reply, error_reply, request_ids
from .sigv2 import V2Claim

log = logging.getLogger("lambdalet.s3")

XML_BODY_MAX = 8 * 1024 * 1024  # DeleteObjects of 1000 keys of 1 KiB, with room
# Sub-resources S3 has and this store does not implement.
UNSUPPORTED = frozenset(
    {
        "acl",
        "analytics",
        "accelerate",
        "attributes",
        "cors",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "logging",
        "metadataTable",
        "metrics",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "versions",
        "website",
        "session",
        "renameObject",
    }
)


class S3Request:
    """One authenticated request, its payload decoded."""

    __slots__ = ("head", "bucket", "key", "query", "body", "trailers", "access_key", "client_ip", "request_id", "host_id")

    def __init__(
        self,
        head: Head,
        addr: Address,
        body: bytes,
        trailers: dict[str, str],
        access_key: str,
        client_ip: str,
        request_id: str,
        host_id: str,
    ) -> None:
        self.head = head
        self.bucket = addr.bucket
        self.key = addr.key
        self.query = addr.query
        self.body = body
        self.trailers = trailers
        self.access_key = access_key
        self.client_ip = client_ip
        self.request_id = request_id
        self.host_id = host_id

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.head.header(name, default)

    def event_context(self, account: str) -> RequestContext:
        return RequestContext(self.request_id, self.host_id, f"AWS:{self.access_key}", self.client_ip, account)


class S3Context:
    """What the operations share: the store, who owns it, where it is, and
    how blocking store calls run."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        region: str,
        account: str,
        on_events: Callable[[], None] = lambda: None,
        can_invoke: Callable[[FunctionConfig, str], str | None] | None = None,
        run_sync: Callable[..., Awaitable] | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        # S3's canonical user ids are 64 hex digits; one owner per server.
        self.owner_id = hashlib.sha256(f"lambdalet:{account}".encode()).hexdigest()
        self.on_events = on_events
        self.can_invoke = can_invoke
        self._limiter = trio.CapacityLimiter(8)
        self._run_sync = run_sync

    async def run(self, fn, *args):
        """A store call on a worker thread (tests may run them inline)."""
        if self._run_sync is not None:
            return await self._run_sync(fn, *args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)


class S3Surface:
    def __init__(
        self, context: S3Context, secrets: Mapping[str, str] | None, bases: tuple[str, ...], max_request_bytes: int | None = None
    ) -> None:
        self.c = context
        self.secrets = secrets
        self.bases = bases
        # A single PUT or part is held in memory until its signature is
        # checked, so it is also capped by the unauthenticated buffer.
        self.max_upload_bytes = min(context.store.max_object_bytes, max_request_bytes or context.store.max_object_bytes)

    def virtual_bucket(self, head: Head) -> str | None:
        return virtual_bucket(head, self.bases)

    # -- before the body ------------------------------------------------------

    def _is_upload(self, head: Head) -> bool:
        """A PUT whose body is object bytes (PutObject, UploadPart)."""
        if head.method != "PUT" or head.header("x-amz-copy-source") is not None:
            return False
        try:
            addr = address(head, self.bases)
        except S3Error:
            return False
        return addr.key is not None and not (UNSUPPORTED & addr.query.keys())

    def _declared_size(self, head: Head) -> int:
        declared = head.header("x-amz-decoded-content-length")
        if declared is not None and declared.isascii() and declared.isdigit():
            return int(declared)
        return head.content_length

    def body_limit(self, head: Head) -> int:
        if self._is_upload(head):
            if self._declared_size(head) > self.max_upload_bytes:
                return 0  # refused from its declared size: too_large() says why
            limit = self.max_upload_bytes
            # aws-chunked framing adds ~90 bytes per chunk of at least 8 KiB.
            return limit + limit // 64 + 65536
        return XML_BODY_MAX

    def _refusal(self, head: Head, exc: S3Error) -> Reply:
        request_id, host_id = request_ids()
        status, headers, payload = error_reply(exc, request_id, host_id)
        headers += [("x-amz-request-id", request_id), ("x-amz-id-2", host_id)]
        return status, headers, payload

    def too_large(self, head: Head) -> Reply:
        if self._is_upload(head):
            return self._refusal(
                head, S3Error("EntityTooLarge", ProposedSize=str(self._declared_size(head)), MaxSizeAllowed=str(self.max_upload_bytes))
            )
        return self._refusal(head, S3Error("MaxMessageLengthExceeded"))

    def precheck(self, head: Head) -> Reply | None:
        try:
            auth.check(head, self.secrets, self.c.region, self.virtual_bucket(head))
            if self._is_upload(head):
                self._check_upload_size(head)
        except S3Error as exc:
            return self._refusal(head, exc)
        return None

    def _check_upload_size(self, head: Head) -> None:
        size = self._declared_size(head)
        if size > self.max_upload_bytes:
            raise S3Error("EntityTooLarge", ProposedSize=str(size), MaxSizeAllowed=str(self.max_upload_bytes))
        self.c.store.check_size(size)

    def busy(self, head: Head) -> Reply:
        return self._refusal(head, S3Error("SlowDown"))

    def timed_out(self, head: Head) -> Reply:
        return self._refusal(head, S3Error("RequestTimeout"))

    # -- the answer -----------------------------------------------------------

    async def handle(self, head: Head, body: bytes, client: tuple[str, int]) -> Reply:
        request_id, host_id = request_ids()
        resource = head.path
        try:
            addr = address(head, self.bases)
            claim = auth.check(head, self.secrets, self.c.region, addr.bucket if addr.virtual else None)
            if self._is_upload(head):
                self._check_upload_size(head)
            if auth.needs_thread(body):
                payload, trailers = await trio.to_thread.run_sync(auth.payload, head, claim, body)
            else:
                payload, trailers = auth.payload(head, claim, body)
            req = S3Request(head, addr, payload, trailers, _access_key(claim), client[0], request_id, host_id)
            status, headers, out = await self._dispatch(req)
        except S3Error as exc:
            status, headers, out = error_reply(exc, request_id, host_id, resource)
        except Exception:  # noqa: BLE001 - one request's bug is S3's InternalError, not a dropped connection
            log.exception("S3 %s %s failed", head.method, head.path)
            status, headers, out = error_reply(S3Error("InternalError"), request_id, host_id, resource)
        headers.append(("x-amz-request-id", request_id))
        headers.append(("x-amz-id-2", host_id))
        return status, headers, out

    async def _dispatch(self, r: S3Request) -> Reply:
        method, q, c = r.head.method, r.query, self.c
        unsupported = UNSUPPORTED & q.keys()
        if unsupported:
            raise S3Error("NotImplemented", f"The {sorted(unsupported)[0]} sub-resource is not implemented by this server's object store.")
        if r.bucket is None:
            if method == "GET":
                return await buckets.list_buckets(c, r)
            raise S3Error("MethodNotAllowed", Method=method, ResourceType="SERVICE")
        if r.key is None:
            if method == "PUT":
                if "notification" in q:
                    return await buckets.put_notification(c, r)
                if "versioning" in q:
                    raise S3Error("NotImplemented", "Versioning is not implemented by this server's object store.")
                return await buckets.create_bucket(c, r)
            if method == "GET":
                if "notification" in q:
                    return await buckets.get_notification(c, r)
                if "location" in q:
                    return await buckets.get_location(c, r)
                if "versioning" in q:
                    return await buckets.get_versioning(c, r)
                if "uploads" in q:
                    return await multipart.list_uploads(c, r)
                return await buckets.list_objects(c, r)
            if method == "HEAD":
                return await buckets.head_bucket(c, r)
            if method == "DELETE":
                return await buckets.delete_bucket(c, r)
            if method == "POST" and "delete" in q:
                return await objects.delete_objects(c, r)
            raise S3Error("MethodNotAllowed", Method=method, ResourceType="BUCKET")
        if method == "PUT":
            if "uploadId" in q or "partNumber" in q:
                if r.header("x-amz-copy-source") is not None:
                    return await multipart.upload_part_copy(c, r)
                return await multipart.upload_part(c, r)
            if r.header("x-amz-copy-source") is not None:
                return await objects.copy_object(c, r)
            return await objects.put_object(c, r)
        if method in ("GET", "HEAD"):
            if "uploadId" in q and method == "GET":
                return await multipart.list_parts(c, r)
            return await objects.get_object(c, r, head_only=method == "HEAD")
        if method == "DELETE":
            if "uploadId" in q:
                return await multipart.abort_upload(c, r)
            return await objects.delete_object(c, r)
        if method == "POST":
            if "uploads" in q:
                return await multipart.create_upload(c, r)
            if "uploadId" in q:
                return await multipart.complete_upload(c, r)
        raise S3Error("MethodNotAllowed", Method=method, ResourceType="OBJECT")


def _access_key(claim: Claim | V2Claim | None) -> str:
    return claim.access_key if claim is not None else "anonymous"
