"""The built-in queues (dead-letter and destination records: redrive or
delete them) and the schedules (enable, disable, delete)."""

from __future__ import annotations

import functools

import msgspec
import trio
from quart import Blueprint, request

from .page_kit import PageKit


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    s = kit.s

    # -- queues -------------------------------------------------------------------------------------------

    @bp.get("/queues")
    async def queues():
        store = s.async_queue.store
        depths = await trio.to_thread.run_sync(store.queue_depths)
        depths.setdefault(s.dead_letter_queue, 0)
        shown = {}
        for queue in sorted(depths):
            msgs = await trio.to_thread.run_sync(functools.partial(store.messages, queue, 200))
            shown[queue] = [_message_row(m) for m in msgs]
        return kit.page("queues.html", depths=depths, queues=shown, stats=msgspec.structs.asdict(s.async_queue.statistics()), tab="queues")

    @bp.post("/queues/<queue>/<action>")
    async def queue_action(queue: str, action: str):
        form = await request.form
        ids = form.getlist("id[]")
        everything = form.get("all") == "1"
        if not ids and not everything:
            return kit.message(400, "Nothing chosen", "Choose the records first, or use the button for all of them.")
        if action == "redrive":
            await s.async_queue.redrive(queue, None if everything else ids)
            done = "redriven"
        elif action == "delete":
            await s.async_queue.delete_messages(queue, None if everything else ids)
            done = "removed"
        else:
            return kit.message(404, "Not found", "There is no such action.")
        return kit.redirect(f"/console/queues?done={done}")

    # -- schedules ------------------------------------------------------------------------------------------

    @bp.get("/schedules")
    async def schedules():
        return kit.page("schedules.html", schedules=s.scheduler.list()["Schedules"], tab="schedules")

    @bp.post("/schedules/<sched>/<action>")
    async def schedule_action(sched: str, action: str):
        current = s.scheduler.get(sched)
        if action == "delete":
            await s.scheduler.delete(sched)
            return kit.redirect("/console/schedules?done=schedule-deleted")
        if action in ("enable", "disable"):
            body = {
                "ScheduleExpression": current["ScheduleExpression"],
                "FunctionName": current["FunctionName"],
                "State": "ENABLED" if action == "enable" else "DISABLED",
            }
            if "Input" in current:
                body["Input"] = current["Input"]
            await s.scheduler.put(sched, body)
            return kit.redirect("/console/schedules?done=schedule")
        return kit.message(404, "Not found", "There is no such action.")


def _message_row(m) -> dict:
    try:
        body = msgspec.json.decode(m.body)
    except msgspec.DecodeError:
        body = {}
    context = body.get("requestContext", {}) if isinstance(body, dict) else {}
    payload = m.payload.decode("utf-8", errors="replace")
    return {
        "id": m.id,
        "function": m.function,
        "qualifier": m.qualifier,
        "sent": m.sent_s * 1000,
        "condition": context.get("condition", ""),
        "attempts": context.get("approximateInvokeCount", ""),
        "payload": payload if len(payload) <= 2000 else payload[:2000] + "…",
    }
