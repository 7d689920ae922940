"""SQS requests, from head to reply.

Both protocols reach the same operations: the JSON protocol by
``X-Amz-Target: AmazonSQS.<Operation>``, the query protocol by
``Action=<Operation>`` in the form body or the query string (sent to the
endpoint or to the queue's URL, which then names the queue). Errors carry
SQS's shape name and its query code (see events/sqs/errors.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import parse_qsl

import msgspec

from ...events.sqs.errors import SqsError
from ...events.sqs.service import SqsService
from ...http.http1 import Head
from ...ids import request_id as new_request_id
from ..sigv4 import AuthError, Claim, check_head
from . import query

log = logging.getLogger("lambdalet.sqs")

BODY_MAX = 4 * 1024 * 1024  # a 1 MiB batch, form-encoded, with room
_JSON = "application/x-amz-json-1.0"
_TARGET = "AmazonSQS."

# operation -> (method name on SqsService, what it takes besides the request)
OPERATIONS: dict[str, tuple[str, str]] = {
    "CreateQueue": ("create_queue", "host"),
    "GetQueueUrl": ("get_queue_url", "host"),
    "ListQueues": ("list_queues", "host"),
    "DeleteQueue": ("delete_queue", ""),
    "PurgeQueue": ("purge_queue", ""),
    "GetQueueAttributes": ("get_queue_attributes", ""),
    "SetQueueAttributes": ("set_queue_attributes", ""),
    "ListDeadLetterSourceQueues": ("list_dead_letter_source_queues", "host"),
    "TagQueue": ("tag_queue", ""),
    "UntagQueue": ("untag_queue", ""),
    "ListQueueTags": ("list_queue_tags", ""),
    "SendMessage": ("send_message", "sender"),
    "SendMessageBatch": ("send_message_batch", "sender"),
    "ReceiveMessage": ("receive_message", ""),
    "DeleteMessage": ("delete_message", ""),
    "DeleteMessageBatch": ("delete_message_batch", ""),
    "ChangeMessageVisibility": ("change_message_visibility", ""),
    "ChangeMessageVisibilityBatch": ("change_message_visibility_batch", ""),
}
_NOT_HERE = {"AddPermission", "RemovePermission", "StartMessageMoveTask", "CancelMessageMoveTask", "ListMessageMoveTasks"}


def _auth_error(exc: AuthError) -> SqsError:
    if exc.code == "MissingAuthenticationTokenException":
        return SqsError("MissingAuthenticationToken", "Request is missing Authentication Token")
    if exc.code == "UnrecognizedClientException":
        return SqsError("InvalidClientTokenId", "The security token included in the request is invalid.")
    if exc.code == "IncompleteSignatureException":
        return SqsError("IncompleteSignature", exc.message)
    return SqsError("SignatureDoesNotMatch", exc.message)


class SqsSurface:
    def __init__(self, service: SqsService, secrets: Mapping[str, str] | None) -> None:
        self.service = service
        self.secrets = secrets

    @staticmethod
    def _is_json(head: Head) -> bool:
        return head.header("x-amz-target") is not None

    def _reply(self, head: Head, exc: SqsError, request_id: str | None = None) -> tuple:
        request_id = request_id or new_request_id()
        if self._is_json(head):
            body = msgspec.json.encode({"__type": f"com.amazonaws.sqs#{exc.name}", "message": exc.message})
            return (
                exc.status,
                [("Content-Type", _JSON), ("x-amzn-query-error", f"{exc.query_code};{exc.fault}"), ("x-amzn-RequestId", request_id)],
                body,
            )
        return exc.status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], query.error(exc, request_id)

    # -- before the body ------------------------------------------------------------

    def body_limit(self, head: Head) -> int:
        return BODY_MAX

    def _check(self, head: Head) -> Claim | None:
        if self.secrets is None:
            return None
        try:
            return check_head(head.method, head.target, head.headers, self.secrets, service="sqs")
        except AuthError as exc:
            raise _auth_error(exc) from None

    def precheck(self, head: Head):
        try:
            self._check(head)
        except SqsError as exc:
            return self._reply(head, exc)
        return None

    def too_large(self, head: Head):
        return self._reply(head, SqsError("RequestEntityTooLarge", f"Request must be smaller than {BODY_MAX} bytes."))

    def busy(self, head: Head):
        status, headers, body = self._reply(head, SqsError("Throttling", "Too many request bodies are arriving at once; retry shortly."))
        return status, headers + [("Retry-After", "1")], body

    def timed_out(self, head: Head):
        return self._reply(head, SqsError("RequestTimeout", "The request body was not received in time."))

    # -- the answer -------------------------------------------------------------------

    async def handle(self, head: Head, body: bytes, client: tuple[str, int]):
        request_id = new_request_id()
        json_protocol = self._is_json(head)
        operation = ""
        try:
            claim = self._check(head)
            if claim is not None:
                try:
                    claim.verify_body(body)
                except AuthError as exc:
                    raise _auth_error(exc) from None
            operation, req = self._decode(head, body, json_protocol)
            method, extra = OPERATIONS[operation]
            args = []
            if extra == "host":
                args.append(head.header("host") or "localhost")
            elif extra == "sender":
                args.append(claim.access_key if claim is not None else self.service.account)
            doc = await getattr(self.service, method)(req, *args)
        except SqsError as exc:
            return self._reply(head, exc, request_id)
        except Exception:  # noqa: BLE001 - SQS's InternalFailure, not a dropped connection
            log.exception("SQS %s failed", operation or head.path)
            return self._reply(
                head,
                SqsError("InternalFailure", "The request processing has failed because of an unknown error, exception or failure."),
                request_id,
            )
        if json_protocol:
            return 200, [("Content-Type", _JSON), ("x-amzn-RequestId", request_id)], msgspec.json.encode(doc)
        return 200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], query.answer(operation, doc, request_id)

    def _decode(self, head: Head, body: bytes, json_protocol: bool) -> tuple[str, dict]:
        if json_protocol:
            target = head.header("x-amz-target") or ""
            operation = target[len(_TARGET) :] if target.startswith(_TARGET) else ""
            try:
                req = msgspec.json.decode(body) if body.strip() else {}
            except msgspec.DecodeError:
                raise SqsError("InvalidParameterValue", "The request body is not valid JSON.") from None
            if not isinstance(req, dict):
                raise SqsError("InvalidParameterValue", "The request body must be a JSON object.")
        else:
            params = parse_qsl(head.query, keep_blank_values=True)
            if head.method == "POST" and body:
                try:
                    params += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
                except UnicodeDecodeError:
                    raise SqsError("MalformedQueryString", "The request body is not UTF-8.") from None
            operation, req = query.request(params)
            # Sent to the queue's own URL: the path names the queue.
            if "QueueUrl" not in req and head.path.count("/") >= 2:
                req["QueueUrl"] = f"http://{head.header('host') or 'localhost'}{head.path}"
        if operation in _NOT_HERE:
            raise SqsError("UnsupportedOperation", f"{operation} is not supported by this server's built-in queues.")
        if operation not in OPERATIONS:
            raise SqsError("InvalidAction", f"The action {operation or '(none)'} is not valid for this endpoint.")
        return operation, req
