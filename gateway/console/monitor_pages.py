"""Charts (one function's and the account's, with this month's bill) and a
function's logs: a time window, a filter, pages and the live tail's link."""

from __future__ import annotations

import time
import urllib.parse

import msgspec
import trio
from quart import Blueprint, Response, request

from ..api.usage_api import decode_token, encode_token, log_group_for
from .page_kit import PageKit
from .series import RANGES

LOG_PAGE = 200


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    s = kit.s

    # -- monitor ----------------------------------------------------------------------------------

    @bp.get("/functions/<name>/monitor")
    async def function_monitor(name: str):
        rec = kit.function(name)
        return kit.page(
            "function_monitor.html",
            fn=rec,
            tab="fn-monitor",
            range=kit.range_arg(),
            ranges=list(RANGES),
            chart_src=f"/console/api/chart?function={urllib.parse.quote(name)}&range={kit.range_arg()}",
        )

    @bp.get("/monitor")
    async def account_monitor():
        bill = await s.monitor.month_bill(s.granularity_ms)
        return kit.page(
            "monitor.html",
            range=kit.range_arg(),
            ranges=list(RANGES),
            bill=bill,
            tab="monitor",
            chart_src=f"/console/api/chart?range={kit.range_arg()}",
        )

    @bp.get("/api/chart")
    async def chart():
        name = request.args.get("function") or None
        if name is not None:
            kit.function(name)
        doc = await s.monitor.chart(name, kit.range_arg())
        return Response(msgspec.json.encode(doc), content_type="application/json")

    # -- logs -----------------------------------------------------------------------------------------

    @bp.get("/functions/<name>/logs")
    async def logs_page(name: str):
        rec = kit.function(name)
        group = log_group_for(s.service, name)
        since_text = request.args.get("since", "")
        until_text = request.args.get("until", "")
        contains = request.args.get("filter", "")[:256] or None
        error = ""
        since_ms = until_ms = None
        try:
            since_ms = _parse_time(since_text, request.args.get("tz", "0"))
            until_ms = _parse_time(until_text, request.args.get("tz", "0"))
        except ValueError as exc:
            error = str(exc)
        if since_ms is None:
            since_ms = int(time.time() * 1000) - 3600_000
        token = request.args.get("next")
        after, upto = decode_token(token) if token else (None, None)
        await s.calls.flush()
        logstore = s.calls.logstore
        result = await trio.to_thread.run_sync(
            lambda: logstore.page(group, since_ms=since_ms, after=after, upto_id=upto, contains=contains, limit=LOG_PAGE)
        )
        events = result.events
        more = result.next
        if until_ms is not None:
            kept = [e for e in events if e.timestamp_ms <= until_ms]
            if len(kept) < len(events):
                more = None
            events = kept
        next_link = None
        if more is not None:
            args = {k: v for k, v in request.args.items() if k != "next"}
            args["next"] = encode_token(more, result.upto_id)
            next_link = f"{kit.fn_url(name, 'logs')}?{urllib.parse.urlencode(args)}"
        return kit.page(
            "function_logs.html",
            fn=rec,
            tab="logs",
            events=events,
            group=group,
            since=since_text,
            until=until_text,
            filter=contains or "",
            error=error,
            next_link=next_link,
            since_ms=since_ms,
            stream_src=f"{kit.fn_url(name, 'logs')}/stream",
        )


def _parse_time(text: str, tz_offset_min: str) -> int | None:
    """A datetime-local value (the browser's local time; tz: its offset from
    UTC in minutes, as Date.getTimezoneOffset() gives it) as epoch ms."""
    import datetime

    text = text.strip()
    if not text:
        return None
    try:
        naive = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time") from None
    try:
        offset = int(tz_offset_min)
    except ValueError:
        offset = 0
    offset = max(-14 * 60, min(14 * 60, offset))
    utc = naive.replace(tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=offset)
    return int(utc.timestamp() * 1000)
