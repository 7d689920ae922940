"""A function's test tab: saved test events, and invoking the function in
process (through the pool, metered and logged like any call) to show its
result, log and REPORT line."""

from __future__ import annotations

import urllib.parse

import msgspec
import trio
from quart import Blueprint, Response, request

from ..api.invoke import SYNC_PAYLOAD_MAX
from ..errors import LambdaError
from .page_kit import PageKit


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    s = kit.s

    # -- test ---------------------------------------------------------------------------------

    async def test_page_response(name: str, status: int = 200, **extra) -> Response:
        rec = kit.function(name)
        saved = await trio.to_thread.run_sync(s.test_events.list, name)
        chosen = request.args.get("event")
        payload = extra.pop("payload", None)
        if payload is None:
            found = next((e for e in saved if e.name == chosen), saved[0] if saved else None)
            payload = found.payload if found is not None else '{\n  "key": "value"\n}'
            chosen = found.name if found is not None else ""
        return kit.page(
            "function_test.html",
            status,
            fn=rec,
            tab="test",
            saved=saved,
            chosen=extra.pop("chosen", chosen),
            payload=payload,
            result=extra.pop("result", None),
            error=extra.pop("error", ""),
            **extra,
        )

    @bp.get("/functions/<name>/test")
    async def test_page(name: str):
        return await test_page_response(name)

    @bp.post("/functions/<name>/test")
    async def test_action(name: str):
        form = await request.form
        payload = form.get("payload", "")
        event_name = form.get("event_name", "").strip()
        action = form.get("action", "invoke")
        try:
            if action == "save":
                await trio.to_thread.run_sync(s.test_events.save, name, event_name, payload)
                return kit.redirect(kit.fn_url(name, "test", "event-saved") + "&event=" + urllib.parse.quote(event_name))
            if action == "delete":
                await trio.to_thread.run_sync(s.test_events.delete, name, form.get("chosen", ""))
                return kit.redirect(kit.fn_url(name, "test", "event-deleted"))
            result = await invoke(name, payload)
        except LambdaError as exc:
            return await test_page_response(name, 400, payload=payload, chosen=event_name or form.get("chosen", ""), error=exc.message)
        return await test_page_response(name, payload=payload, chosen=form.get("chosen", ""), result=result)

    async def invoke(name: str, payload: str) -> dict:
        raw = payload.encode()
        if len(raw) > SYNC_PAYLOAD_MAX:
            raise LambdaError("RequestTooLargeException", f"Request must be smaller than {SYNC_PAYLOAD_MAX} bytes for the Invoke operation")
        if raw.strip():
            try:
                msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
        rec = s.service.resolve(name)
        spec = s.invoker.spec_for(rec)
        outcome = await s.invoker.pool.invoke(spec, raw)
        log = outcome.log.decode("utf-8", errors="replace")
        report = next(
            (line for line in reversed(log.splitlines()) if line.startswith("REPORT RequestId:") or '"platform.report"' in line), ""
        )
        try:
            shown = msgspec.json.format(outcome.payload, indent=2).decode("utf-8", errors="replace")
        except msgspec.DecodeError:
            shown = outcome.payload.decode("utf-8", errors="replace")
        return {
            "request_id": outcome.request_id,
            "failed": bool(outcome.function_error),
            "error_type": outcome.error_type,
            "payload": shown,
            "log": log,
            "report": report,
            "duration_ms": outcome.duration_ns / 1e6,
            "cold": outcome.cold,
        }
