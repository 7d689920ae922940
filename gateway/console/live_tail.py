"""The live log tail: a function's new log events as server-sent events.

A stream opens with the group's last BACKLOG events, then polls the log
store for events stored after the last one sent (the call journal moves
them into SQLite every quarter second). Each event's id is the store's, so
a browser that reconnects (EventSource does so by itself) sends
Last-Event-ID and misses nothing. A comment line every HEARTBEAT_S keeps
the connection from looking stalled; a stream ends after MAX_STREAM_S, or
as soon as its session does, and the browser reconnects under whatever
session it then has.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import msgspec
import trio

from ..metering.log_records import LogEvent
from ..metering.logstore import LogStore

BACKLOG = 100
POLL_S = 0.5
HEARTBEAT_S = 15.0
MAX_STREAM_S = 600.0
BATCH = 500
MAX_STREAMS = 32  # open tails, all sessions together
RETRY_MS = 2000


def event_bytes(event: LogEvent) -> bytes:
    """One log event as an SSE message: its id, and its fields as JSON (the
    page inserts the message as text, never as markup)."""
    data = msgspec.json.encode({"id": event.id, "timestamp": event.timestamp_ms, "stream": event.log_stream, "message": event.message})
    return b"id: %d\nevent: log\ndata: %s\n\n" % (event.id, data)


def last_events(store: LogStore, group: str, limit: int = BACKLOG, contains: str | None = None) -> list[LogEvent]:
    sql = "SELECT id, timestamp_ms, log_group, log_stream, message FROM events WHERE log_group = ?"
    params: tuple = (group,)
    if contains:
        sql += " AND instr(message, ?) > 0"
        params += (contains,)
    rows = store.query(sql + " ORDER BY timestamp_ms DESC, id DESC LIMIT ?", params + (limit,))
    rows.reverse()
    return [LogEvent(id=i, timestamp_ms=t, log_group=g, log_stream=s, message=m) for i, t, g, s, m in rows]


async def stream(
    store: LogStore,
    group: str,
    *,
    after_id: int | None,
    contains: str | None,
    alive: Callable[[], bool],
    run_sync: Callable[..., Awaitable] = trio.to_thread.run_sync,
    poll_s: float = POLL_S,
    heartbeat_s: float = HEARTBEAT_S,
    max_s: float = MAX_STREAM_S,
):
    """Yields the stream's bytes until max_s has passed or alive() says no."""
    yield b"retry: %d\n: live tail of %s\n\n" % (RETRY_MS, group.encode())
    if after_id is None:
        events = await run_sync(last_events, store, group, BACKLOG, contains)
        after_id = events[-1].id if events else await run_sync(_newest_id, store)
        for event in events:
            yield event_bytes(event)
    deadline = trio.current_time() + max_s
    quiet_since = trio.current_time()
    while trio.current_time() < deadline and alive():
        events = await run_sync(functools.partial(store.events, group, after_id=after_id, contains=contains, limit=BATCH))
        if events:
            after_id = events[-1].id
            yield b"".join(event_bytes(e) for e in events)
            quiet_since = trio.current_time()
        elif trio.current_time() - quiet_since >= heartbeat_s:
            yield b": keep-alive\n\n"
            quiet_since = trio.current_time()
        await trio.sleep(poll_s)


def _newest_id(store: LogStore) -> int:
    return store.query("SELECT coalesce(max(id), 0) FROM events")[0][0]
