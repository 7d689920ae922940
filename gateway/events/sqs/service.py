"""SQS's operations on the built-in queues' messages (sending, receiving,
deleting, visibility), validated as SQS validates them and answered in the
JSON shapes of botocore's model (the query protocol renders the same
documents as XML); the queues' own operations are in queues.py.

Long polling waits on the queue itself: a send, a visibility change or a
message made receivable again wakes the waiters at once, and otherwise
they sleep until the next invisible message becomes receivable or their
wait ends. Event source mappings wait the same way.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import trio

from . import md5
from .errors import SqsError, invalid, no_queue
from .message_checks import (
    MAX_BATCH,
    attribute_bytes,
    batch_entries,
    check_body,
    int_param,
    message_attributes,
    parse_receipt,
    pick_attributes,
    receipt_handle,
)
from .queues import QUEUE_NAME_RE, READABLE, QueueOperations
from .store import OutgoingMessage, QueueRow, SqsStore, StoredMessage

_SYSTEM_NAMES = {
    "All",
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
}
MAX_WAIT_S = 20


class SqsService(QueueOperations):
    def __init__(
        self,
        store: SqsStore,
        *,
        region: str,
        account: str,
        wall: Callable[[], float] = time.time,
        run_sync: Callable[..., Awaitable] | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self.wall = wall
        self._run_sync = run_sync
        self._limiter = trio.CapacityLimiter(4)
        self._arrivals: dict[str, trio.Event] = {}
        self._purged: dict[str, float] = {}
        self._deleted: dict[str, float] = {}

    async def _run(self, fn, *args):
        if self._run_sync is not None:
            return await self._run_sync(fn, *args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- names --------------------------------------------------------------------

    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def url(self, name: str, host: str) -> str:
        return f"http://{host}/{self.account}/{name}"

    @staticmethod
    def name_from_url(url: object) -> str:
        if not isinstance(url, str) or not url:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueUrl.")
        name = url.rstrip("/").rsplit("/", 1)[-1]
        if not QUEUE_NAME_RE.fullmatch(name):
            raise SqsError("InvalidAddress", f"The address {url} is not valid for this endpoint.")
        return name

    @staticmethod
    def name_from_arn(arn: str) -> str | None:
        parts = arn.split(":")
        if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sqs" and QUEUE_NAME_RE.fullmatch(parts[5]):
            return parts[5]
        return None

    # -- waking waiters -------------------------------------------------------------

    def notify(self, name: str) -> None:
        """Messages may have become receivable in ``name``."""
        event = self._arrivals.pop(name, None)
        if event is not None:
            event.set()

    async def wait_for_messages(self, name: str, deadline: float) -> None:
        """Returns when a message may be receivable in ``name`` or at the
        trio clock's ``deadline``, whichever is first."""
        # Take the event before looking, so that a send between the look and
        # the wait still wakes us.
        event = self._arrivals.get(name)
        if event is None:
            event = self._arrivals[name] = trio.Event()
        now = self.wall()
        if await self._run(self.store.has_receivable, name, now):
            return
        wake = deadline
        upcoming = await self._run(self.store.next_visible, name, now)
        if upcoming is not None:
            wake = min(wake, trio.current_time() + max(0.0, upcoming - self.wall()))
        with trio.move_on_at(wake):
            await event.wait()

    # -- sending ----------------------------------------------------------------------

    def _outgoing(self, entry: dict, row: QueueRow, sender: str) -> tuple[OutgoingMessage, int]:
        body = check_body(entry.get("MessageBody"))
        delay = entry.get("DelaySeconds")
        delay_s = int(self.effective(row, "DelaySeconds")) if delay is None else int_param(delay, "DelaySeconds", 0, 900)
        attributes = message_attributes(entry.get("MessageAttributes"))
        system = {}
        for name, value in (entry.get("MessageSystemAttributes") or {}).items():
            if name != "AWSTraceHeader" or not isinstance(value, dict) or value.get("DataType") != "String":
                raise invalid(f"Message system attribute name '{name}' is invalid.")
            system[name] = str(value.get("StringValue", ""))
        size = len(body.encode("utf-8")) + sum(
            len(n.encode())
            + len(v["DataType"].encode())
            + len(v.get("StringValue", "").encode())
            + len(base64.b64decode(v.get("BinaryValue", "")))
            for n, v in attributes.items()
        )
        limit = int(self.effective(row, "MaximumMessageSize"))
        if size > limit:
            raise invalid(f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")
        return OutgoingMessage(str(uuid.uuid4()), body, attributes, system, delay_s, sender), size

    @staticmethod
    def _digests(msg: OutgoingMessage) -> dict:
        doc: dict[str, str | None] = {"MD5OfMessageBody": md5.of_body(msg.body), "MessageId": msg.id}
        attrs = md5.of_attributes({n: attribute_bytes(v) for n, v in msg.attributes.items()})
        if attrs is not None:
            doc["MD5OfMessageAttributes"] = attrs
        if msg.system:
            doc["MD5OfMessageSystemAttributes"] = md5.of_attributes(
                {n: {"DataType": "String", "StringValue": v} for n, v in msg.system.items()}
            )
        return doc

    async def send_message(self, req: dict, sender: str) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        row = await self._queue(name)
        msg, _ = self._outgoing(req, row, sender)
        await self._send(row, [msg])
        return self._digests(msg)

    async def _send(self, row: QueueRow, messages: list[OutgoingMessage]) -> None:
        retention = float(self.effective(row, "MessageRetentionPeriod"))
        if not await self._run(self.store.send, row.name, messages, self.wall(), retention):
            raise no_queue()
        self.notify(row.name)

    async def send_message_batch(self, req: dict, sender: str) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        entries = batch_entries(req, "Entries", "SendMessageBatchRequestEntry")
        row = await self._queue(name)
        ok: list[tuple[dict, OutgoingMessage]] = []
        failed = []
        total = 0
        for entry in entries:
            try:
                msg, size = self._outgoing(entry, row, sender)
            except SqsError as exc:
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": exc.query_code, "Message": exc.message})
                continue
            total += size
            ok.append((entry, msg))
        limit = int(self.effective(row, "MaximumMessageSize"))
        if total > limit:
            raise SqsError("BatchRequestTooLong", f"Batch requests cannot be longer than {limit} bytes. You have sent {total} bytes.")
        if ok:
            await self._send(row, [m for _, m in ok])
        return {"Successful": [{"Id": e["Id"], **self._digests(m)} for e, m in ok], "Failed": failed}

    # -- receiving ----------------------------------------------------------------------

    def redrive_of(self, row: QueueRow) -> tuple[str, int] | None:
        policy = row.attributes.get("RedrivePolicy")
        if not policy:
            return None
        doc = json.loads(policy)
        target = self.name_from_arn(doc["deadLetterTargetArn"])
        return (target, int(doc["maxReceiveCount"])) if target else None

    async def receive(self, row: QueueRow, limit: int, visibility_s: float) -> list[StoredMessage]:
        """One receive, no waiting (event source mappings use it too)."""
        messages, moved = await self._run(self.store.receive, row.name, limit, visibility_s, self.wall(), self.redrive_of(row))
        if moved:
            target = self.redrive_of(row)
            if target is not None:
                self.notify(target[0])
        return messages

    async def receive_message(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        limit = 1 if req.get("MaxNumberOfMessages") is None else int_param(req["MaxNumberOfMessages"], "MaxNumberOfMessages", 1, MAX_BATCH)
        row = await self._queue(name)
        visibility = (
            int_param(req["VisibilityTimeout"], "VisibilityTimeout", 0, 43200)
            if req.get("VisibilityTimeout") is not None
            else int(self.effective(row, "VisibilityTimeout"))
        )
        wait = (
            int_param(req["WaitTimeSeconds"], "WaitTimeSeconds", 0, MAX_WAIT_S)
            if req.get("WaitTimeSeconds") is not None
            else int(self.effective(row, "ReceiveMessageWaitTimeSeconds"))
        )
        system_names = set(req.get("MessageSystemAttributeNames") or []) | set(req.get("AttributeNames") or [])
        for n in system_names:
            if n not in _SYSTEM_NAMES and n not in READABLE:
                raise SqsError("InvalidAttributeName", f"Unknown Attribute {n}.")
        attribute_names = req.get("MessageAttributeNames") or []
        deadline = trio.current_time() + wait
        while True:
            messages = await self.receive(row, limit, visibility)
            if messages or trio.current_time() >= deadline:
                break
            await self.wait_for_messages(name, deadline)
            if await self._run(self.store.queue, name) is None:
                raise no_queue()
        out = [self.message_doc(m, system_names, attribute_names) for m in messages]
        return {"Messages": out} if out else {}

    def message_doc(self, m: StoredMessage, system_names: set[str], attribute_names: list[str]) -> dict:
        doc: dict = {"MessageId": m.id, "ReceiptHandle": receipt_handle(m), "MD5OfBody": md5.of_body(m.body), "Body": m.body}
        system = self.system_attributes(m)
        if "All" in system_names:
            doc["Attributes"] = system
        elif system_names:
            picked = {k: v for k, v in system.items() if k in system_names}
            if picked:
                doc["Attributes"] = picked
        wanted = pick_attributes(m.attributes, attribute_names)
        if wanted:
            doc["MD5OfMessageAttributes"] = md5.of_attributes({n: attribute_bytes(v) for n, v in wanted.items()})
            doc["MessageAttributes"] = wanted
        return doc

    def system_attributes(self, m: StoredMessage) -> dict[str, str]:
        out = {
            "SenderId": m.sender or self.account,
            "SentTimestamp": str(int(m.sent_s * 1000)),
            "ApproximateReceiveCount": str(m.receive_count),
            "ApproximateFirstReceiveTimestamp": str(int((m.first_receive_s or m.sent_s) * 1000)),
        }
        out.update(m.system)
        return out

    # -- deleting and visibility ----------------------------------------------------------

    async def delete_message(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        receipt = parse_receipt(req.get("ReceiptHandle"))
        await self._queue(name)
        await self._run(self.store.delete, name, [receipt])
        return {}

    async def delete_message_batch(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        entries = batch_entries(req, "Entries", "DeleteMessageBatchRequestEntry")
        await self._queue(name)
        failed, receipts = [], []
        for e in entries:
            try:
                receipts.append((e["Id"], parse_receipt(e.get("ReceiptHandle"))))
            except SqsError as exc:
                failed.append({"Id": e["Id"], "SenderFault": True, "Code": exc.query_code, "Message": exc.message})
        await self._run(self.store.delete, name, [r for _, r in receipts])
        ok = [{"Id": i} for i, _ in receipts]
        return {"Successful": ok, "Failed": failed}

    async def _change(self, name: str, handle: object, timeout: object) -> None:
        seq, token = parse_receipt(handle)
        seconds = int_param(timeout, "VisibilityTimeout", 0, 43200)
        now = self.wall()
        status = await self._run(self.store.change_visibility, name, seq, token, now + seconds, now)
        if status == "unknown":
            raise invalid(
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
            )
        if status == "not_in_flight":
            raise SqsError("MessageNotInflight", "The message referred to isn't in flight.")
        if seconds == 0:
            self.notify(name)

    async def change_message_visibility(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        await self._queue(name)
        await self._change(name, req.get("ReceiptHandle"), req.get("VisibilityTimeout"))
        return {}

    async def change_message_visibility_batch(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        entries = batch_entries(req, "Entries", "ChangeMessageVisibilityBatchRequestEntry")
        await self._queue(name)
        ok, failed = [], []
        for e in entries:
            try:
                await self._change(name, e.get("ReceiptHandle"), e.get("VisibilityTimeout"))
                ok.append({"Id": e["Id"]})
            except SqsError as exc:
                failed.append({"Id": e["Id"], "SenderFault": True, "Code": exc.query_code, "Message": exc.message})
        return {"Successful": ok, "Failed": failed}
