"""HTTP for usage, logs and metrics, on the control-plane app.

    GET /_lambdalet/usage?month=YYYY-MM&function=F&format=json|csv
        the monthly bill, in exactly the shape `lambdalet usage --json` prints
    GET /_lambdalet/logs?function=F&since_ms=N&filter=TEXT&limit=N&nextToken=T
        the function's log events in time order, a page at a time as
        FilterLogEvents gives them: {"logGroupName", "events": [{"id",
        "timestamp", "logStreamName", "message"}], "nextToken" (absent on
        the last page), "nextAfterId"}. Paging covers the events stored
        when the first page was read; nextAfterId is where to follow on.
    GET /_lambdalet/logs?function=F&after_id=N&filter=TEXT&limit=N
        following: events stored after event N, in the order they were
        stored; "nextAfterId" is the next after_id.
    GET /metrics
        Prometheus text (see metrics.py)

/_lambdalet/usage and /_lambdalet/logs are SigV4-signed like the Lambda
API. /metrics is exempt in router.py: Prometheus scrapers do not sign.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time

import trio
from quart import Response, request

from ..errors import invalid
from ..functions.service import FunctionService
from ..metering import billing, metrics
from ..metering.calls import CallJournal
from .control import _json

MAX_EVENTS = 10_000


def encode_token(cursor: tuple[int, int], upto_id: int) -> str:
    return base64.urlsafe_b64encode(f"{cursor[0]}.{cursor[1]}.{upto_id}".encode()).decode()


def decode_token(token: str) -> tuple[tuple[int, int], int]:
    """The cursor and id bound a nextToken carries; 400 if it is not one of ours."""
    try:
        ts, event_id, upto = (int(part) for part in base64.urlsafe_b64decode(token.encode()).decode().split("."))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("The specified nextToken is invalid.") from None
    return (ts, event_id), upto


def log_group_for(service: FunctionService, name: str) -> str:
    rec = service.registry.get(name)
    if rec is not None:
        return rec.logging_config.get("LogGroup", f"/aws/lambda/{name}")
    return f"/aws/lambda/{name}"  # a deleted function's logs stay readable


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer, got {raw!r}") from None


def register(
    app, service: FunctionService, calls: CallJournal, *, granularity_ms: int, prices: billing.Prices = billing.DEFAULT_PRICES
) -> None:
    logstore = calls.logstore

    @app.get("/_lambdalet/usage", endpoint="lambdalet_usage")
    async def usage():
        month = request.args.get("month") or billing.month_of(time.time_ns())
        try:
            billing.month_bounds_ns(month)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        function = request.args.get("function") or None
        # Every answered call: what the journal holds is moved into SQLite
        # first, or, on a full disk, counted from the journal as it is
        # (the query runs in a thread, off the event loop).
        usage = await calls.usage(month, function)
        doc = billing.report(month, granularity_ms, usage, prices)
        if request.args.get("format") == "csv":
            return Response(billing.report_csv(doc), content_type="text/csv")
        return Response(billing.report_json(doc), content_type="application/json")

    @app.get("/_lambdalet/logs", endpoint="lambdalet_logs")
    async def logs():
        function = request.args.get("function")
        if not function:
            raise invalid("function is required")
        group = log_group_for(service, function)
        since_ms = _int_arg("since_ms", 0)
        contains = request.args.get("filter") or None
        limit = min(max(1, _int_arg("limit", MAX_EVENTS)), MAX_EVENTS)
        await calls.flush()
        doc: dict = {"logGroupName": group}
        if request.args.get("after_id"):
            after_id = _int_arg("after_id", 0)
            query = functools.partial(logstore.events, group, since_ms=since_ms, after_id=after_id, contains=contains, limit=limit)
            events = await trio.to_thread.run_sync(query)
            doc["nextAfterId"] = events[-1].id if events else after_id
        else:
            token = request.args.get("nextToken")
            after, upto_id = decode_token(token) if token else (None, None)
            page_query = functools.partial(
                logstore.page, group, since_ms=since_ms, after=after, upto_id=upto_id, contains=contains, limit=limit
            )
            page = await trio.to_thread.run_sync(page_query)
            events = page.events
            if page.next is not None:
                doc["nextToken"] = encode_token(page.next, page.upto_id)
            doc["nextAfterId"] = page.upto_id
        doc["events"] = [{"id": e.id, "timestamp": e.timestamp_ms, "logStreamName": e.log_stream, "message": e.message} for e in events]
        return _json(doc)

    @app.get("/metrics", endpoint="lambdalet_metrics")
    async def prometheus():
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)
