"""`lambdalet logs` and /_lambdalet/logs page through every stored event,
as FilterLogEvents does, and say when they stop early."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import urllib.parse

import pytest
import requests
from helpers import lambdalet_argv
from test_cli import run_cli

from lambdalet.gateway.metering.log_records import CallLog
from lambdalet.gateway.metering.logstore import LogStore

GROUP = "/aws/lambda/f"


def _record(store: LogStore, i: int, lines: list[str], started_ms: int | None = None) -> None:
    started_ns = (started_ms if started_ms is not None else i + 1) * 1_000_000
    store.commit(
        [
            CallLog(
                log_group=GROUP,
                log_stream="s",
                request_id=f"r{i}",
                started_ns=started_ns,
                ended_ns=started_ns,
                log="".join(f"{line}\n" for line in lines).encode(),
            )
        ]
    )


def _all_pages(store: LogStore, **kwargs) -> tuple[list[str], int]:
    messages, pages, after, upto = [], 0, None, None
    while True:
        page = store.page(GROUP, after=after, upto_id=upto, **kwargs)
        pages += 1
        messages += [e.message for e in page.events]
        upto = page.upto_id
        if page.next is None:
            return messages, pages
        after = page.next


@pytest.fixture
def store(tmp_path):
    s = LogStore(tmp_path)
    yield s
    s.close()


def test_pages_hold_every_event_once_in_time_order(store):
    for i in range(25):
        _record(store, i, [f"a{i}", f"b{i}"])
    store.commit(
        [CallLog(log_group="/aws/lambda/other", log_stream="s", request_id="x", started_ns=5_000_000, ended_ns=5_000_000, log=b"not f\n")]
    )
    messages, pages = _all_pages(store, limit=10)
    assert messages == [m for i in range(25) for m in (f"a{i}", f"b{i}")]
    assert pages == 5  # 50 events, 10 a page, and the last page says it is the last
    # --since: from that millisecond on.
    assert _all_pages(store, limit=7, since_ms=20)[0] == [m for i in range(19, 25) for m in (f"a{i}", f"b{i}")]


def test_a_filtered_page_examines_a_bounded_number_of_rows(store):
    for i in range(100):
        _record(store, i, ["needle" if i in (3, 97) else "hay"])
    page = store.page(GROUP, contains="needle", limit=10, scan=20)
    # Twenty rows looked at: one match, and a cursor to go on from.
    assert [e.message for e in page.events] == ["needle"] and page.next is not None
    messages, pages = _all_pages(store, contains="needle", limit=10, scan=20)
    assert messages == ["needle", "needle"] and pages == 5


def test_paging_ends_at_what_was_stored_when_it_began_and_following_picks_up_the_rest(store):
    for i in range(10):
        _record(store, i, [f"old{i}"])
    first = store.page(GROUP, limit=4)
    # A call logs while we page, stamped earlier than the cursor (a slow call's
    # START): not in this paging (it would be skipped silently otherwise),
    # but the first thing following prints.
    _record(store, 99, ["late"], started_ms=1)
    messages = [e.message for e in first.events]
    after = first.next
    while after is not None:
        page = store.page(GROUP, after=after, upto_id=first.upto_id, limit=4)
        messages += [e.message for e in page.events]
        after = page.next
    assert messages == [f"old{i}" for i in range(10)]
    assert [e.message for e in store.events(GROUP, after_id=first.upto_id)] == ["late"]


def test_lambdalet_logs_prints_more_than_one_page(server, lam, deploy):
    # One call printing 10,500 lines: more events than one page holds (10,000),
    # which is all `lambdalet logs` used to show, newest first, without a word.
    name = deploy({"app.py": "def handler(e, c):\n    print('\\n'.join(f'line {i:05d}' for i in range(10500)))\n    return 1\n"})
    lam.invoke(FunctionName=name)
    out = run_cli(server, "logs", name).stdout.splitlines()
    lines = [line.split(" ", 2)[2] for line in out]
    # A cold start: INIT_START (the runtime version), then the call's lines.
    assert lines[0].startswith("INIT_START Runtime Version: ") and lines[1].startswith("START RequestId: ")
    assert lines[-1].startswith("REPORT RequestId: ")
    assert [x for x in lines if x.startswith("line ")] == [f"line {i:05d}" for i in range(10500)]
    assert len(lines) == 10504

    capped = run_cli(server, "logs", name, "--max-events", "100")
    assert len(capped.stdout.splitlines()) == 100
    assert "stopped after 100 events (--max-events), before the end" in capped.stderr
    whole = run_cli(server, "logs", name, "--max-events", "10504")
    assert len(whole.stdout.splitlines()) == 10504 and whole.stderr == ""

    # The API itself, a page at a time, with a token.
    client = server.client()
    seen, token, pages = 0, None, 0
    while True:
        doc = _signed_logs(server, client, {"function": name, "limit": "4000", **({"nextToken": token} if token else {})})
        seen += len(doc["events"])
        pages += 1
        token = doc.get("nextToken")
        if token is None:
            break
    assert (seen, pages) == (10504, 3)
    bad = requests.get(f"{server.url}/_lambdalet/logs", timeout=10)
    assert bad.status_code == 403


def _signed_get(server, client, params: dict) -> requests.Response:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}" for k, v in params.items())
    url = f"{server.url}/_lambdalet/logs?{query}"
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(client._request_signer._credentials.get_frozen_credentials(), "lambda", "us-east-1").add_auth(req)
    return requests.get(url, headers=dict(req.headers.items()), timeout=30)


def _signed_logs(server, client, params: dict) -> dict:
    resp = _signed_get(server, client, params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_bad_token_is_a_clear_400(server):
    resp = _signed_get(server, server.client(), {"function": "f", "nextToken": "not-a-token"})
    assert resp.status_code == 400 and resp.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert "nextToken" in resp.json()["message"]


def test_lambdalet_logs_says_when_the_server_stops_answering_mid_way(tmp_path):
    # A stand-in server: one page with a token, then an error.
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    pages = [
        {
            "logGroupName": GROUP,
            "events": [{"id": 1, "timestamp": 0, "logStreamName": "s", "message": "first page"}],
            "nextToken": "t",
            "nextAfterId": 1,
        }
    ]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if pages:
                body = json.dumps(pages.pop()).encode()
                self.send_response(200)
            else:
                body = json.dumps({"message": "database is locked"}).encode()
                self.send_response(500)
                self.send_header("x-amzn-ErrorType", "ServiceException")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        env = dict(os.environ, LAMBDALET_ENDPOINT=f"http://127.0.0.1:{httpd.server_port}", LAMBDALET_DATA_DIR=str(tmp_path))
        proc = subprocess.run(lambdalet_argv("logs", "f"), capture_output=True, text=True, env=env, timeout=60)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert proc.stdout.rstrip().endswith("first page")
    assert proc.returncode == 1
    assert "stopped early, after 1 events: ServiceException: database is locked" in proc.stderr
    assert "Traceback" not in proc.stderr
