"""Handing an object's events from s3.db to queue.db, on the real stores:
each step repeated as after a crash adds nothing twice and loses nothing
(the server-level kill -9 tests are in test_s3_notifications.py)."""

from __future__ import annotations

import pytest
import trio

from lambdalet.gateway.events.async_store import AsyncStore
from lambdalet.gateway.events.s3 import notifications, xmlsafe
from lambdalet.gateway.events.s3.outbox import OutboxDrainer
from lambdalet.gateway.events.s3.records import ObjectMeta
from lambdalet.gateway.events.s3.store import ObjectStore

CTX = notifications.RequestContext("REQ", "HOST", "AWS:KEY", "127.0.0.1", "000000000000")
CONFIG = (
    b"<NotificationConfiguration><CloudFunctionConfiguration><Id>c</Id>"
    b"<CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:f</CloudFunction>"
    b"<Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event></CloudFunctionConfiguration></NotificationConfiguration>"
)


class QueueOnStore:
    """The two things the drainer uses of the async queue, on a real queue.db."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self.adopted: list[str] = []

    async def enqueue_handed_over(self, events):
        added = self.store.add_handed_over(events)
        self.adopted += [e.id for e in added]
        return added


async def _inline(fn, *args):
    return fn(*args)


@pytest.fixture
def stores(tmp_path):
    objects = ObjectStore(tmp_path / "s3", max_object_bytes=1 << 20)
    queue = AsyncStore(tmp_path / "queue.db")
    objects.create_bucket("bkt")
    config, _ = notifications.parse_config(xmlsafe.parse(CONFIG))
    objects.put_notification("bkt", config)
    yield objects, queue, tmp_path
    objects.close()
    queue.close()


def _put(objects, key, data=b"x"):
    return objects.put_object("bkt", key, objects.stage(data), "text/plain", ObjectMeta(), CTX)


def _drainer(objects, queue, allowed=lambda row: True):
    return OutboxDrainer(objects, QueueOnStore(queue), allowed=allowed, version_of=lambda f, q: q, run_sync=_inline)


@pytest.mark.trio
async def test_events_move_once_and_the_outbox_empties(stores):
    objects, queue, _ = stores
    _put(objects, "a")
    _put(objects, "b")
    objects.delete_objects("bkt", ["a"], CTX)
    drainer = _drainer(objects, queue)
    assert await drainer.drain_once()
    assert not await drainer.drain_once()
    events = queue.pending_events()
    assert len(events) == 3 and {e.function for e in events} == {"f"}
    names = [__import__("json").loads(queue.event_payload(e.id))["Records"][0]["eventName"] for e in events]
    assert sorted(names) == ["ObjectCreated:Put", "ObjectCreated:Put", "ObjectRemoved:Delete"]
    assert objects.outbox() == []


@pytest.mark.trio
async def test_a_hand_over_repeated_after_a_crash_adds_nothing(stores):
    objects, queue, tmp_path = stores
    _put(objects, "k")
    rows = objects.outbox()
    # The server died after step 2 (queued in queue.db) and before the
    # outbox row went: after a restart the same row is handed over again.
    from lambdalet.gateway.events.async_store import NewEvent

    queue.add_handed_over([NewEvent(rows[0].id, rows[0].function, rows[0].payload, rows[0].created_s)])
    queue.close()
    queue = AsyncStore(tmp_path / "queue.db")  # what a restart reads
    drainer = _drainer(objects, queue)
    assert await drainer.drain_once()
    assert [e.id for e in queue.pending_events()] == [rows[0].id]
    assert drainer.queue.adopted == []  # not started a second time
    # Once the outbox row is gone for good, its id is forgotten.
    await drainer.drain_once()
    _put(objects, "k2")
    await drainer.drain_once()
    remaining = {r[0] for r in queue._db.execute("SELECT id FROM handed_over")}
    assert rows[0].id not in remaining
    queue.close()


@pytest.mark.trio
async def test_start_up_forgets_ids_the_outbox_no_longer_holds(stores):
    objects, queue, _ = stores
    _put(objects, "k")
    drainer = _drainer(objects, queue)
    await drainer.drain_once()  # handed over, outbox emptied; its id still remembered
    assert queue._db.execute("SELECT COUNT(*) FROM handed_over").fetchone()[0] == 1
    with trio.move_on_after(1):
        async with trio.open_nursery() as nursery:
            await nursery.start(drainer.run)
            nursery.cancel_scope.cancel()
    assert queue._db.execute("SELECT COUNT(*) FROM handed_over").fetchone()[0] == 0


@pytest.mark.trio
async def test_a_destination_that_revoked_s3_gets_nothing(stores, capsys):
    objects, queue, _ = stores
    _put(objects, "k")
    drainer = _drainer(objects, queue, allowed=lambda row: False)
    await drainer.drain_once()
    assert queue.pending_events() == [] and objects.outbox() == [] and drainer.refused == 1
    assert "no longer lets s3.amazonaws.com invoke it" in capsys.readouterr().err
