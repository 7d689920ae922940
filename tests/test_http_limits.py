"""The HTTP limits' sans-IO parts, and the TLS front's body rules, under a mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lambdalet.gateway.http.limits import ByteBudget, ConnectionSlots, HttpLimits
from lambdalet.gateway.http.tls_front import asgi_front


def test_budget_refuses_what_would_pass_the_limit_and_counts_nothing_for_it():
    budget = ByteBudget(100)
    assert budget.try_take(60)
    assert not budget.try_take(41)
    assert budget.statistics().used == 60 and budget.statistics().refused == 1
    assert budget.try_take(40)
    budget.give_back(100)
    assert budget.statistics().used == 0
    with pytest.raises(RuntimeError):
        budget.give_back(1)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_connections", 0),
        ("unauthenticated_buffer_bytes", -1),
        ("head_timeout_s", 0.0),
        ("body_timeout_s", float("inf")),
        ("idle_timeout_s", float("nan")),
        ("linger_s", -1.0),
    ],
)
def test_limits_refuse_nonsense(field, value):
    with pytest.raises(ValueError):
        HttpLimits(**{field: value})


@pytest.mark.trio
async def test_slots_wait_at_the_cap_and_ask_for_an_idle_connection_first(autojump_clock):
    asked = []
    slots = ConnectionSlots(2, reclaim=lambda: asked.append(trio.current_time()) or False)
    await slots.acquire()
    slots.acquire_nowait()
    with pytest.raises(trio.WouldBlock):
        slots.acquire_nowait()
    got = trio.Event()

    async def third():
        await slots.acquire()
        got.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(third)
        await trio.sleep(5.5)
        assert not got.is_set() and slots.statistics().waiters == 1
        assert len(asked) >= 5  # asked again about once a second
        slots.release()
        await got.wait()
    assert slots.statistics().open == 2 and slots.statistics().reclaimed == 0


@pytest.mark.trio
async def test_slots_reclaim_counts(autojump_clock):
    slots = ConnectionSlots(1)
    slots.acquire_nowait()

    def reclaim():
        slots.release()  # as a closed idle connection would
        return True

    slots.reclaim = reclaim
    await slots.acquire()
    assert slots.statistics().reclaimed == 1 and slots.statistics().open == 1


# -- the TLS front's ASGI app, driven without hypercorn -----------------------


class StubRouter:
    def __init__(self) -> None:
        self.handled: list[bytes] = []

    def body_limit(self, head):
        return 10_000

    def too_large(self, head):
        return 413, [], b"too large"

    def precheck(self, head):
        return (403, [], b"refused") if head.header("authorization") == "bad" else None

    def busy(self, head):
        return 429, [], b"busy"

    def timed_out(self, head):
        return 408, [], b"timed out"

    async def handle(self, head, body, client):
        self.handled.append(body)
        return 200, [], b"ok"


def _scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"host", b"h"), *headers],
        "client": ("127.0.0.1", 1),
    }


async def _call(app, scope, receive):
    sent = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"] if sent else None, b"".join(m.get("body", b"") for m in sent[1:])


def _script(*messages, then_wait: bool = False):
    """A receive() that gives messages in turn, then waits forever or fails."""
    queue = list(messages)

    async def receive():
        if queue:
            await trio.lowlevel.checkpoint()
            return queue.pop(0)
        if then_wait:
            await trio.sleep_forever()
        raise AssertionError("the body was read")

    return receive


@pytest.mark.trio
async def test_tls_front_trickled_body_meets_the_total_deadline(autojump_clock):
    limits = HttpLimits(body_timeout_s=20.0)
    router = StubRouter()
    budget = ByteBudget(1 << 20)

    async def trickle():
        await trio.sleep(2)
        return {"type": "http.request", "body": b"x", "more_body": True}

    started = trio.current_time()
    status, body = await _call(asgi_front(router, limits, budget), _scope([(b"content-length", b"1000")]), trickle)
    assert (status, body) == (408, b"timed out")
    assert limits.body_timeout_s <= trio.current_time() - started < limits.body_timeout_s + 2
    assert router.handled == [] and budget.statistics().used == 0


@pytest.mark.trio
async def test_tls_front_stalled_body_meets_the_progress_timeout(autojump_clock):
    limits = HttpLimits(head_timeout_s=7.0, body_timeout_s=600.0)
    started = trio.current_time()
    receive = _script({"type": "http.request", "body": b"abc", "more_body": True}, then_wait=True)
    status, _ = await _call(asgi_front(StubRouter(), limits), _scope([]), receive)
    assert status == 408
    assert trio.current_time() - started == pytest.approx(limits.head_timeout_s)


@pytest.mark.trio
async def test_tls_front_refuses_from_the_head_and_past_the_budget():
    router = StubRouter()
    budget = ByteBudget(100)
    app = asgi_front(router, HttpLimits(), budget)
    assert await _call(app, _scope([(b"authorization", b"bad"), (b"content-length", b"50")]), _script()) == (403, b"refused")
    assert await _call(app, _scope([(b"content-length", b"500")]), _script()) == (429, b"busy")
    # No declared length, as HTTP/2 allows: counted as it comes.
    growing = _script(*[{"type": "http.request", "body": b"y" * 30, "more_body": True}] * 10)
    assert await _call(app, _scope([]), growing) == (429, b"busy")
    assert budget.statistics().used == 0 and router.handled == []
    small = _script({"type": "http.request", "body": b"z" * 60, "more_body": False})
    assert await _call(app, _scope([(b"content-length", b"60")]), small) == (200, b"ok")
    assert router.handled == [b"z" * 60] and budget.statistics().used == 0
