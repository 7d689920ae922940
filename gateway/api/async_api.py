"""HTTP for asynchronous invocation, on the control-plane app.

Lambda's own operations use botocore's paths exactly:
    PUT|GET|POST|DELETE /2019-09-25/functions/{FunctionName}/event-invoke-config
    GET /2019-09-25/functions/{FunctionName}/event-invoke-config/list
    POST /2014-11-13/functions/{FunctionName}/invoke-async   (InvokeAsync, deprecated)
Lambdalet's additions (SigV4-signed like everything else) live under
/_lambdalet/:
    GET  /_lambdalet/queues                          queues and their depths
    GET  /_lambdalet/queues/{queue}/messages         records, oldest first
    POST /_lambdalet/queues/{queue}/redrive          {"MessageIds": [...]} or all
    DELETE /_lambdalet/queues/{queue}/messages       {"MessageIds": [...]} or {"All": true}
    GET  /_lambdalet/async                           the queue's statistics
    GET  /_lambdalet/schedules                       every schedule
    PUT|GET|DELETE /_lambdalet/schedules/{name}      {"ScheduleExpression", "FunctionName", "Input"?, "State"?}
"""

from __future__ import annotations

import base64

import msgspec
import trio
from quart import Response, request

from ..errors import LambdaError, invalid
from ..events.async_queue import AsyncQueue
from ..events.destinations import QUEUE_NAME_RE, queue_arn
from ..events.event_config import EventConfigs
from ..events.scheduler import Scheduler
from .control import _body, _json
from .invoke import ASYNC_PAYLOAD_MAX


def _queue_name(name: str) -> str:
    if not QUEUE_NAME_RE.match(name):
        raise invalid(f"Queue name {name!r} must be 1-80 of A-Z, a-z, 0-9, '-' and '_'.")
    return name


def _message_body(raw: bytes) -> object:
    """A destination record (JSON), or a message sent through SQS (any text)."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", "replace")


def _message_doc(m, region: str, account: str) -> dict:
    return {
        "MessageId": m.id,
        "QueueArn": queue_arn(region, account, m.queue),
        "FunctionName": m.function,
        "Qualifier": m.qualifier,
        "SentTimestamp": m.sent_s,
        "Body": _message_body(m.body),
        "EventPayload": base64.b64encode(m.payload).decode(),
    }


def register(app, configs: EventConfigs, queue: AsyncQueue, scheduler: Scheduler) -> None:
    service = configs.service
    base = "/2019-09-25/functions/<name>/event-invoke-config"

    @app.put(base, endpoint="put_event_invoke_config")
    async def put_event_invoke_config(name: str):
        return _json(await configs.put(name, request.args.get("Qualifier"), await _body()))

    @app.post(base, endpoint="update_event_invoke_config")
    async def update_event_invoke_config(name: str):
        return _json(await configs.update(name, request.args.get("Qualifier"), await _body()))

    @app.get(base, endpoint="get_event_invoke_config")
    async def get_event_invoke_config(name: str):
        return _json(configs.get(name, request.args.get("Qualifier")))

    @app.delete(base, endpoint="delete_event_invoke_config")
    async def delete_event_invoke_config(name: str):
        await configs.delete(name, request.args.get("Qualifier"))
        return Response(b"", status=204)

    @app.get(base + "/list", endpoint="list_event_invoke_configs")
    async def list_event_invoke_configs(name: str):
        return _json(configs.list(name, request.args.get("Marker"), request.args.get("MaxItems")))

    @app.post("/2014-11-13/functions/<name>/invoke-async", endpoint="invoke_async")
    async def invoke_async(name: str):
        # The deprecated InvokeAsync: the same durable queue as Event invokes.
        rec = service.resolve(name)
        raw = await request.get_data()
        assert isinstance(raw, bytes)  # as_text is off
        if len(raw) > ASYNC_PAYLOAD_MAX:
            raise LambdaError(
                "RequestTooLargeException", f"Request must be smaller than {ASYNC_PAYLOAD_MAX} bytes for the InvokeAsync operation"
            )
        if raw.strip():
            try:
                msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
        request_id = await queue.enqueue(rec, raw, ref=name)
        return Response(
            msgspec.json.encode({"Status": 202}), status=202, content_type="application/json", headers={"x-amzn-RequestId": request_id}
        )

    @app.get("/_lambdalet/async", endpoint="async_statistics")
    async def async_statistics():
        return _json(msgspec.structs.asdict(queue.statistics()))

    @app.get("/_lambdalet/queues", endpoint="list_queues")
    async def list_queues():
        depths = await _to_thread(queue.store.queue_depths)
        return _json(
            {"Queues": [{"QueueArn": queue_arn(service.region, service.account, q), "Name": q, "Messages": n} for q, n in depths.items()]}
        )

    @app.get("/_lambdalet/queues/<qname>/messages", endpoint="list_queue_messages")
    async def list_queue_messages(qname: str):
        limit = request.args.get("MaxItems", "1000")
        if not limit.isdigit() or not 1 <= int(limit) <= 10000:
            raise invalid("MaxItems must be 1-10000")
        msgs = await _to_thread(lambda: queue.store.messages(_queue_name(qname), int(limit)))
        return _json({"Messages": [_message_doc(m, service.region, service.account) for m in msgs]})

    @app.post("/_lambdalet/queues/<qname>/redrive", endpoint="redrive_queue")
    async def redrive_queue(qname: str):
        body = await _body()
        ids = body.get("MessageIds")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise invalid("MessageIds must be a list of strings")
        moved = await queue.redrive(_queue_name(qname), ids)
        return _json({"Redriven": moved})

    @app.delete("/_lambdalet/queues/<qname>/messages", endpoint="delete_queue_messages")
    async def delete_queue_messages(qname: str):
        body = await _body()
        ids = body.get("MessageIds")
        if ids is None and body.get("All") is not True:
            raise invalid('Name the records to delete with "MessageIds", or delete every one with "All": true')
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise invalid("MessageIds must be a list of strings")
        return _json({"Deleted": await queue.delete_messages(_queue_name(qname), ids)})

    @app.get("/_lambdalet/schedules", endpoint="list_schedules")
    async def list_schedules():
        return _json(scheduler.list())

    @app.put("/_lambdalet/schedules/<sname>", endpoint="put_schedule")
    async def put_schedule(sname: str):
        return _json(await scheduler.put(sname, await _body()))

    @app.get("/_lambdalet/schedules/<sname>", endpoint="get_schedule")
    async def get_schedule(sname: str):
        return _json(scheduler.get(sname))

    @app.delete("/_lambdalet/schedules/<sname>", endpoint="delete_schedule")
    async def delete_schedule(sname: str):
        await scheduler.delete(sname)
        return Response(b"", status=204)


async def _to_thread(fn):
    return await trio.to_thread.run_sync(fn)
