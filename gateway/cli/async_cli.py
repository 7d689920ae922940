"""`lambdalet schedule add|ls|rm` and `lambdalet dlq ls|redrive|rm`.

These talk to Lambdalet's own routes (/_lambdalet/...), which boto3 has no
model for, so requests are signed here with botocore's SigV4 signer, exactly
as boto3 would sign them.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..app.config import DEFAULT_REGION


def _request(args, method: str, path: str, body: dict | None = None) -> dict:
    """The server's JSON answer ({} for none, as a DELETE gives)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    from .client import UserError, client, endpoint, http_error

    # client() finds the credentials the same way every other command does.
    creds = client(args)._request_signer._credentials
    data = json.dumps(body).encode() if body is not None else b""
    url = endpoint(args).rstrip("/") + path
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
    region = os.environ.get("AWS_REGION", DEFAULT_REGION)
    botocore.auth.SigV4Auth(creds, "lambda", region).add_auth(req)
    prepared = req.prepare()
    http = urllib.request.Request(prepared.url, data=data or None, method=method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(http, timeout=60) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            doc = json.loads(raw)
            message = doc.get("message") or doc.get("Message") or raw.decode(errors="replace")
        except ValueError:
            message = raw.decode(errors="replace")
        raise http_error(str(exc.headers.get("x-amzn-ErrorType", exc.code)), message) from None
    except urllib.error.URLError as exc:
        raise UserError(f"cannot reach the server: {exc.reason}") from None
    return json.loads(raw) if raw else {}


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Columns of text (the server's JSON strings), left-aligned."""
    widths = [max(len(x) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_schedule_add(args) -> int:
    from .client import UserError

    body = {"ScheduleExpression": args.expression, "FunctionName": args.function}
    if args.input is not None:
        try:
            json.loads(args.input)
        except ValueError as exc:
            raise UserError(f"--input is not valid JSON: {exc}") from None
        body["Input"] = args.input
    if args.disabled:
        body["State"] = "DISABLED"
    doc = _request(args, "PUT", f"/_lambdalet/schedules/{urllib.parse.quote(args.name, safe='')}", body)
    print(f"scheduled {doc['Name']}: {doc['ScheduleExpression']} -> {doc['FunctionName']} (next: {doc['NextFire'] or 'never'})")
    return 0


def cmd_schedule_ls(args) -> int:
    doc = _request(args, "GET", "/_lambdalet/schedules")
    schedules = doc["Schedules"]
    if args.json:
        print(json.dumps(schedules, indent=2))
        return 0
    rows = [
        (s["Name"], s["ScheduleExpression"], s["FunctionName"], s["State"], s["NextFire"] or "-", s["LastFire"] or "-") for s in schedules
    ]
    _table(("NAME", "EXPRESSION", "FUNCTION", "STATE", "NEXT", "LAST"), rows)
    return 0


def cmd_schedule_rm(args) -> int:
    _request(args, "DELETE", f"/_lambdalet/schedules/{urllib.parse.quote(args.name, safe='')}")
    print(f"deleted schedule {args.name}")
    return 0


def cmd_dlq_ls(args) -> int:
    doc = _request(args, "GET", f"/_lambdalet/queues/{urllib.parse.quote(args.queue, safe='')}/messages")
    messages = doc["Messages"]
    if args.json:
        print(json.dumps(messages, indent=2))
        return 0
    rows = []
    for m in messages:
        ctx = m["Body"].get("requestContext", {}) if isinstance(m["Body"], dict) else {}
        stamp = m["Body"].get("timestamp", "") if isinstance(m["Body"], dict) else ""
        rows.append(
            (
                m["MessageId"],
                m["FunctionName"] or "(sent)",
                str(ctx.get("condition", "")),
                str(ctx.get("approximateInvokeCount", "")),
                stamp,
            )
        )
    _table(("MESSAGE ID", "FUNCTION", "CONDITION", "ATTEMPTS", "TIMESTAMP"), rows)
    return 0


def cmd_dlq_redrive(args) -> int:
    body = {"MessageIds": args.ids} if args.ids else {}
    doc = _request(args, "POST", f"/_lambdalet/queues/{urllib.parse.quote(args.queue, safe='')}/redrive", body)
    print(f"redrove {doc['Redriven']} event(s) from {args.queue}")
    return 0


def cmd_dlq_rm(args) -> int:
    from .client import UserError

    if not args.ids and not args.all:
        raise UserError("name the MESSAGE_IDs to delete, or pass --all")
    body = {"MessageIds": args.ids} if args.ids else {"All": True}
    doc = _request(args, "DELETE", f"/_lambdalet/queues/{urllib.parse.quote(args.queue, safe='')}/messages", body)
    print(f"deleted {doc['Deleted']} record(s) from {args.queue}")
    return 0


def add_commands(sub: argparse._SubParsersAction, parents: list | None = None) -> None:
    from ..events.destinations import DEFAULT_DLQ

    parents = parents or []

    p = sub.add_parser("schedule", help="invoke functions on a rate(...) or cron(...) schedule", parents=parents)
    ssub = p.add_subparsers(dest="schedule_command", required=True)
    q = ssub.add_parser("add", help="create or replace a schedule", parents=parents)
    q.add_argument("name", help="the schedule's name")
    q.add_argument("expression", help="rate(5 minutes) or cron(0 12 * * ? *), as EventBridge defines them (UTC)")
    q.add_argument("--function", required=True, help="the function to invoke")
    q.add_argument("--input", help="constant JSON payload instead of the Scheduled Event")
    q.add_argument("--disabled", action="store_true", help="create it switched off")
    q.set_defaults(func=cmd_schedule_add)
    q = ssub.add_parser("ls", help="list schedules", parents=parents)
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_schedule_ls)
    q = ssub.add_parser("rm", help="delete a schedule", parents=parents)
    q.add_argument("name", help="the schedule's name")
    q.set_defaults(func=cmd_schedule_rm)

    p = sub.add_parser("dlq", help="read and redrive the built-in dead-letter (destination) queues", parents=parents)
    dsub = p.add_subparsers(dest="dlq_command", required=True)
    q = dsub.add_parser("ls", help="list records in a queue", parents=parents)
    q.add_argument("--queue", default=DEFAULT_DLQ, help="the built-in queue to use")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_dlq_ls)
    q = dsub.add_parser("redrive", help="send records back to their functions as new events", parents=parents)
    q.add_argument("ids", nargs="*", metavar="MESSAGE_ID", help="only these (default: all)")
    q.add_argument("--queue", default=DEFAULT_DLQ, help="the built-in queue to use")
    q.set_defaults(func=cmd_dlq_redrive)
    q = dsub.add_parser("rm", help="delete records for good", parents=parents)
    q.add_argument("ids", nargs="*", metavar="MESSAGE_ID", help="the records to delete")
    q.add_argument("--all", action="store_true", help="every record in the queue")
    q.add_argument("--queue", default=DEFAULT_DLQ, help="the built-in queue to use")
    q.set_defaults(func=cmd_dlq_rm)
