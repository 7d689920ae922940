"""(s) Events from other services: how long from an object's PUT (its 200)
to the handler's first line, and from a SendMessage (its 200) to the
handler of a mapped function. Warm instances, one event at a time.

The handler reads the wall clock first thing; the client reads it when the
answer arrives. Both run on this machine, so the difference is the latency
(it can be a little below zero: the event is on its way to the function
before the 200 reaches the client). Target (docs/architecture.md): p50 ≤ 10 ms and
p99 ≤ 50 ms; AWS documents seconds for S3 notifications.
"""

from __future__ import annotations

import json
import time

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import requests

from .harness import ROLE, RUNTIME, Lambdalet, median, percentile, zip_of

ACCOUNT = "000000000000"
STAMP = """
import json, time
def handler(event, context):
    started = time.time()
    print("STARTED " + json.dumps({"at": started, "n": len(event["Records"]),
          "key": event["Records"][0].get("s3", {}).get("object", {}).get("key") or event["Records"][0].get("body")}))
    return {"at": started, "records": event["Records"]}
"""


def _client(lam: Lambdalet, service: str):
    creds = lam.client._request_signer._credentials
    return boto3.client(
        service,
        endpoint_url=lam.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=botocore.config.Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


def _started(lam: Lambdalet, function: str) -> dict[str, float]:
    """key or body -> when the handler started, from the function's log."""
    creds = lam.client._request_signer._credentials
    out: dict[str, float] = {}
    token = None
    while True:
        url = f"{lam.url}/_lambdalet/logs?function={function}&limit=10000" + (f"&nextToken={token}" if token else "")
        request = botocore.awsrequest.AWSRequest(method="GET", url=url)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(creds.access_key, creds.secret_key), "lambda", "us-east-1").add_auth(
            request
        )
        doc = requests.get(url, headers=dict(request.headers), timeout=30).json()
        for e in doc["events"]:
            if "STARTED " in e["message"]:
                fig = json.loads(e["message"].split("STARTED ", 1)[1])
                out[fig["key"]] = fig["at"]
        token = doc.get("nextToken")
        if not token:
            return out


def _wait(lam: Lambdalet, function: str, keys: list[str], timeout: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = _started(lam, function)
        if all(k in seen for k in keys) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def _figures(lat_ms: list[float]) -> dict:
    return {"p50_ms": median(lat_ms), "p99_ms": percentile(lat_ms, 99), "n": len(lat_ms)}


def s3_latency(lam: Lambdalet, n: int) -> dict:
    s3 = _client(lam, "s3")
    lam.client.create_function(
        FunctionName="on-object",
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": STAMP})},
        MemorySize=512,
    )
    lam.client.get_waiter("function_active_v2").wait(FunctionName="on-object")
    lam.client.add_permission(
        FunctionName="on-object",
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::bench-bucket",
    )
    s3.create_bucket(Bucket="bench-bucket")
    s3.put_bucket_notification_configuration(
        Bucket="bench-bucket",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:on-object", "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    for i in range(3):  # a warm instance before measuring
        s3.put_object(Bucket="bench-bucket", Key=f"warm-{i}", Body=b"w")
    _wait(lam, "on-object", [f"warm-{i}" for i in range(3)])
    answered: dict[str, float] = {}
    sent: dict[str, float] = {}
    for i in range(n):
        key = f"in/{i}.csv"
        sent[key] = time.time()
        s3.put_object(Bucket="bench-bucket", Key=key, Body=b"a,b\n1,2\n")
        answered[key] = time.time()
        _wait(lam, "on-object", [key], timeout=30)  # one at a time: latency, not throughput
    started = _started(lam, "on-object")
    from_200 = [(started[k] - answered[k]) * 1000 for k in answered if k in started]
    from_request = [(started[k] - sent[k]) * 1000 for k in sent if k in started]
    return {"from_200": _figures(from_200), "from_request": _figures(from_request), "missing": n - len(from_200)}


def sqs_latency(lam: Lambdalet, n: int) -> dict:
    sqs = _client(lam, "sqs")
    lam.client.create_function(
        FunctionName="on-message",
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": STAMP})},
        MemorySize=512,
        Timeout=3,
    )
    lam.client.get_waiter("function_active_v2").wait(FunctionName="on-message")
    url = sqs.create_queue(QueueName="bench-queue")["QueueUrl"]
    lam.client.create_event_source_mapping(
        EventSourceArn=f"arn:aws:sqs:us-east-1:{ACCOUNT}:bench-queue", FunctionName="on-message", BatchSize=1
    )
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"warm-{i}")
    _wait(lam, "on-message", [f"warm-{i}" for i in range(3)])
    answered: dict[str, float] = {}
    for i in range(n):
        body = f"m-{i}"
        sqs.send_message(QueueUrl=url, MessageBody=body)
        answered[body] = time.time()
        _wait(lam, "on-message", [body], timeout=30)
    started = _started(lam, "on-message")
    lat = [(started[k] - answered[k]) * 1000 for k in answered if k in started]
    return {"from_200": _figures(lat), "missing": n - len(lat)}


def section_s(quick: bool) -> dict:
    n = 30 if quick else 100
    lam = Lambdalet()
    try:
        out = {"sqs": sqs_latency(lam, n)}
        try:
            out["s3"] = s3_latency(lam, n)
        except Exception as exc:  # noqa: BLE001 - the SQS figures still count
            out["s3"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out
    finally:
        lam.stop()


def render(s: dict) -> list[str]:
    rows = []
    s3 = s.get("s3", {})
    if "from_200" in s3:
        f = s3["from_200"]
        rows.append(
            f"| S3 object created → handler start, p50 / p99 ms (from put_object's 200, n={f['n']}) | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | target ≤ 10 / ≤ 50 | {f['p50_ms'] / 10:.2f}× / {f['p99_ms'] / 50:.2f}× of target |"
        )
        g = s3["from_request"]
        rows.append(
            f"| S3 PUT sent → handler start, p50 / p99 ms (the PUT's two fsyncs included) | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | | |"
        )
    elif "error" in s3:
        rows.append(f"| S3 object created → handler start | failed: {s3['error'][:80]} | | |")
    q = s.get("sqs", {})
    if "from_200" in q:
        f = q["from_200"]
        rows.append(
            f"| SQS message → handler start, p50 / p99 ms (from SendMessage's 200, n={f['n']}) | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | target ≤ 10 / ≤ 50 | {f['p50_ms'] / 10:.2f}× / {f['p99_ms'] / 50:.2f}× of target |"
        )
    return rows
