"""`lambdalet usage` and `lambdalet logs`: clients of the running server.

Both read over HTTP (GET /_lambdalet/usage, GET /_lambdalet/logs), signed
with SigV4 by botocore with the same credentials the other subcommands use.
Reading through the server rather than the data directory means the report
includes calls still in the ledger's journal, and never races the server's
writer.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from ..metering.billing import report_json

_SINCE_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
FOLLOW_POLL_S = 1.0


def parse_since(text: str, now_ms: int | None = None, user_error: type[Exception] = ValueError) -> int:
    """'10m', '2h', '3d' ago, or an ISO 8601 time: epoch milliseconds."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    m = _SINCE_RE.match(text.strip())
    if m:
        return now_ms - int(m.group(1)) * _UNIT_S[m.group(2)] * 1000
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise user_error(f"--since expects 10m, 2h, 3d or an ISO 8601 time, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp() * 1000)


def _get(args, path: str, params: dict) -> bytes:
    """A SigV4-signed GET to the server; returns the body or raises UserError."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    user_error, make_client, endpoint = args.cli_helpers
    client = make_client(args)
    creds = client._request_signer._credentials.get_frozen_credentials()
    # Escape the query strictly (%20, never +), as SigV4's canonical form
    # does, so that what is signed is byte for byte what is sent.
    query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}" for k, v in params.items() if v is not None
    )
    url = f"{endpoint(args).rstrip('/')}{path}" + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(creds, "lambda", client.meta.region_name).add_auth(req)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(req.headers.items()), method="GET"), timeout=60) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            doc = json.loads(body)
            message = doc.get("message") or doc.get("Message") or body
        except ValueError:
            message = body
        from .client import http_error

        raise http_error(str(exc.headers.get("x-amzn-ErrorType", exc.code)), message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise user_error(f"cannot reach the server at {endpoint(args)}: {getattr(exc, 'reason', exc)}") from None


def cmd_usage(args) -> int:
    if args.month and not re.fullmatch(r"\d{4}-\d{2}", args.month):
        raise args.cli_helpers[0](f"--month expects YYYY-MM, got {args.month!r}")
    fmt = "csv" if args.csv else "json"
    body = _get(args, "/_lambdalet/usage", {"month": args.month, "function": args.function, "format": fmt})
    if args.csv:
        sys.stdout.write(body.decode())
        return 0
    doc = json.loads(body)
    if args.json:
        print(report_json(doc))
        return 0
    print(f"usage for {doc['month']} (billed per {doc['granularity_ms']} ms)")
    rows = [("FUNCTION", "REQUESTS", "DURATION MS", "BILLED MS", "GB-S", "COST USD")]
    for f in doc["functions"]:
        rows.append(
            (
                f["function"],
                str(f["requests"]),
                f"{f['duration_ms']:.3f}",
                str(f["billed_duration_ms"]),
                f"{f['gb_seconds']:.4f}",
                f"{f['cost_usd']:.6f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    t = doc["totals"]
    print(
        f"total: {t['requests']} requests, {t['gb_seconds']:.4f} GB-s, ${t['cost_usd_before_free_tier']:.6f} before the free tier, ${t['cost_usd']:.6f} due"
    )
    return 0


def _print_events(events: list[dict]) -> None:
    for e in events:
        ts = datetime.datetime.fromtimestamp(e["timestamp"] / 1000, datetime.timezone.utc)
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        print(f"{stamp} {e['logStreamName']} {e['message']}", flush=True)


def cmd_logs(args) -> int:
    user_error = args.cli_helpers[0]
    if args.max_events is not None and args.max_events < 1:
        raise user_error("--max-events must be at least 1")
    since_ms = parse_since(args.since, user_error=user_error) if args.since else 0
    query = {"function": args.name, "since_ms": since_ms, "filter": args.filter}
    printed = 0
    token = None
    # Every page of what is stored, then (--follow) what comes after.
    while True:
        try:
            doc = json.loads(_get(args, "/_lambdalet/logs", {**query, "nextToken": token}))
        except user_error as exc:
            if printed:
                raise user_error(f"stopped early, after {printed} events: {exc}") from None
            raise
        events = doc["events"]
        token = doc.get("nextToken")
        if args.max_events is not None and (
            len(events) > args.max_events - printed or (token and printed + len(events) >= args.max_events)
        ):
            events = events[: args.max_events - printed]
            _print_events(events)
            print(f"lambdalet logs: stopped after {printed + len(events)} events (--max-events), before the end", file=sys.stderr)
            return 0
        _print_events(events)
        printed += len(events)
        if token is None:
            break
    if not printed:
        _say_why_empty(args, doc["logGroupName"])
    after_id = doc["nextAfterId"]
    while args.follow:
        doc = json.loads(_get(args, "/_lambdalet/logs", {**query, "after_id": after_id}))
        _print_events(doc["events"])
        after_id = doc["nextAfterId"]
        if not doc["events"]:
            time.sleep(FOLLOW_POLL_S)
    return 0


def _say_why_empty(args, group: str) -> None:
    """Nothing to print: a function that does not exist is an error (unless
    it left logs behind, which stay readable after it is deleted); one
    that exists but has no events yet gets a note on stderr."""
    user_error, make_client, _endpoint = args.cli_helpers
    import botocore.exceptions

    try:
        make_client(args).get_function_configuration(FunctionName=args.name)
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        if err.get("Code") == "ResourceNotFoundException":
            raise user_error(f"ResourceNotFoundException: no function named {args.name}, and no logs in {group}") from None
        from .client import http_error

        raise http_error(err.get("Code", "Error"), err.get("Message", str(exc))) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise user_error(str(exc)) from None
    filters = [f for f in (args.since and f"since {args.since}", args.filter and f"matching {args.filter!r}") if f]
    print(f"lambdalet: no log events in {group}{' ' + ' '.join(filters) if filters else ''} yet", file=sys.stderr)


def add_parsers(sub, user_error: type[Exception], make_client, endpoint, parents: list | None = None) -> None:
    """The subcommands, given the UserError, client factory and endpoint
    lookup of client.py (passed in by commands.py, which builds the parser)."""
    helpers = (user_error, make_client, endpoint)
    p = sub.add_parser("usage", help="requests, GB-s and cost for a month, per function", parents=parents or [])
    p.add_argument("--month", help="YYYY-MM (default: this month, UTC)")
    p.add_argument("--function", help="only this function")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--csv", action="store_true", help="print CSV")
    p.set_defaults(func=cmd_usage, cli_helpers=helpers)

    p = sub.add_parser("logs", help="print a function's logs", parents=parents or [])
    p.add_argument("name", help="function name")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--since", help="how far back: 10m, 2h, 3d, or an ISO 8601 time (default: everything)")
    p.add_argument("--filter", help="only events containing this text")
    p.add_argument("--max-events", type=int, metavar="N", help="print at most N stored events, and say so if more remain (default: all)")
    p.set_defaults(func=cmd_logs, cli_helpers=helpers)
