"""Event source mappings from the built-in queues, through boto3's lambda
and sqs clients on a real server with real sandboxes: Lambda's validation,
batches as Lambda forms them, the SQS event, ReportBatchItemFailures,
retries through the visibility timeout and the dead-letter queue."""

from __future__ import annotations

import json
import sys

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests
from helpers import ServerProcess, make_zip, signed_request, wait_for
from s3_shapes import assert_json_output

ACCOUNT = "000000000000"
ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"

CONSUMER = """
import json
def handler(event, context):
    bodies = [r["body"] for r in event["Records"]]
    print("BATCH " + json.dumps({"bodies": bodies, "record": event["Records"][0]}))
    failed = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"].startswith("fail")]
    if any(b.startswith("raise") for b in bodies):
        raise RuntimeError("batch failed")
    return {"batchItemFailures": failed}
"""


def _arn(queue: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}"


def _batches(server, function: str) -> list[dict]:
    """What the consumer printed, one entry per batch, from its stored log."""
    key, secret = server.credentials()
    url = f"{server.url}/_lambdalet/logs?function={function}"
    request = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda", "us-east-1").add_auth(request)
    events = requests.get(url, headers=dict(request.headers), timeout=10).json()["events"]
    return [json.loads(e["message"].split("BATCH ", 1)[1]) for e in events if "BATCH " in e["message"]]


@pytest.fixture
def consumer(deploy, fn_name):
    return deploy({"app.py": CONSUMER}, Timeout=3)


@pytest.fixture
def sqs(server):
    return server.aws("sqs")


def _queue(sqs, name: str, **attributes) -> str:
    attributes.setdefault("VisibilityTimeout", "3")
    return sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]


def test_messages_run_the_function_in_batches_and_are_deleted(server, sqs, consumer):
    url = _queue(sqs, f"{consumer}-q")
    seen = {}
    # A client of its own: the hook reads every answer's body, which must not
    # happen to the session's client (an Invoke's body is a stream).
    lam = server.client()
    lam.meta.events.register("after-call.lambda", lambda http_response, model, **_: seen.__setitem__(model.name, http_response.content))
    mapping = lam.create_event_source_mapping(
        EventSourceArn=_arn(f"{consumer}-q"), FunctionName=consumer, BatchSize=10, MaximumBatchingWindowInSeconds=1
    )
    assert mapping["State"] == "Creating" and mapping["BatchSize"] == 10
    assert mapping["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{consumer}"
    assert_json_output("lambda", "CreateEventSourceMapping", seen["CreateEventSourceMapping"])
    for start in range(0, 25, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": f"m{i}", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": str(i)}}}
                for i in range(start, min(start + 10, 25))
            ],
        )
    batches = wait_for(lambda: (b := _batches(server, consumer)) and sum(len(x["bodies"]) for x in b) >= 25 and b, timeout=60)
    bodies = [body for b in batches for body in b["bodies"]]
    assert sorted(bodies) == sorted(f"m{i}" for i in range(25))  # each exactly once
    assert all(1 <= len(b["bodies"]) <= 10 for b in batches) and len(batches) < 25  # batched, within BatchSize
    record = batches[0]["record"]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == _arn(f"{consumer}-q") and record["awsRegion"] == "us-east-1"
    assert set(record) >= {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody"}
    assert record["attributes"]["ApproximateReceiveCount"] == "1" and "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"]["n"]["dataType"] == "Number" and record["messageAttributes"]["n"]["stringListValues"] == []
    wait_for(
        lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    )
    assert (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    got = lam.get_event_source_mapping(UUID=mapping["UUID"])
    assert got["State"] == "Enabled" and got["LastProcessingResult"] == "OK"
    assert_json_output("lambda", "GetEventSourceMapping", seen["GetEventSourceMapping"])
    listed = lam.list_event_source_mappings(FunctionName=consumer)["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [mapping["UUID"]]
    assert_json_output("lambda", "ListEventSourceMappings", seen["ListEventSourceMappings"])
    assert lam.delete_event_source_mapping(UUID=mapping["UUID"])["State"] == "Deleting"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_event_source_mapping(UUID=mapping["UUID"])


def test_report_batch_item_failures_and_the_dlq(server, lam, sqs, consumer):
    dlq = _queue(sqs, f"{consumer}-dlq")
    url = _queue(sqs, f"{consumer}-src", RedrivePolicy=json.dumps({"deadLetterTargetArn": _arn(f"{consumer}-dlq"), "maxReceiveCount": 2}))
    lam.create_event_source_mapping(
        EventSourceArn=_arn(f"{consumer}-src"),
        FunctionName=consumer,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "ok-a"}, {"Id": "b", "MessageBody": "fail-b"}, {"Id": "c", "MessageBody": "ok-c"}]
    )

    def in_dlq():
        return sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"], VisibilityTimeout=60).get("Messages")

    (dead,) = wait_for(in_dlq, timeout=60)
    # received twice from its queue, once more here
    assert dead["Body"] == "fail-b" and dead["Attributes"]["ApproximateReceiveCount"] == "3"
    bodies = [body for b in _batches(server, consumer) for body in b["bodies"]]
    # The successes ran once; the reported failure came back after the
    # visibility timeout and was run again, twice in all.
    assert bodies.count("ok-a") == 1 and bodies.count("ok-c") == 1 and bodies.count("fail-b") == 2
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_function_error_fails_the_whole_batch(server, lam, sqs, consumer):
    dlq = _queue(sqs, f"{consumer}-dlq")
    url = _queue(sqs, f"{consumer}-src", RedrivePolicy=json.dumps({"deadLetterTargetArn": _arn(f"{consumer}-dlq"), "maxReceiveCount": 1}))
    lam.create_event_source_mapping(EventSourceArn=_arn(f"{consumer}-src"), FunctionName=consumer, BatchSize=2)
    sqs.send_message(QueueUrl=url, MessageBody="raise-1")
    (dead,) = wait_for(lambda: sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=60).get("Messages"), timeout=60)
    assert dead["Body"] == "raise-1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_disable_and_enable(server, lam, sqs, consumer):
    url = _queue(sqs, f"{consumer}-q")
    mapping = lam.create_event_source_mapping(EventSourceArn=_arn(f"{consumer}-q"), FunctionName=consumer, Enabled=False)
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Disabled"
    sqs.send_message(QueueUrl=url, MessageBody="waits")
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["Body"] == "waits"  # not taken
    updated = lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True, BatchSize=3)
    assert updated["State"] == "Updating" and updated["BatchSize"] == 3
    wait_for(lambda: any("waits" in b["bodies"] for b in _batches(server, consumer)), timeout=60)


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        ({"EventSourceArn": _arn("no-such-queue")}, "InvalidParameterValueException", "does not exist"),
        (
            {"EventSourceArn": "arn:aws:kinesis:us-east-1:000000000000:stream/s"},
            "InvalidParameterValueException",
            "Unrecognized event source",
        ),
        ({"FunctionName": "no-such-function"}, "ResourceNotFoundException", "Function not found"),
        ({"BatchSize": 11}, "InvalidParameterValueException", "Maximum batch window in seconds must be greater than 0"),
        # What breaks the model's ranges and enums is refused before anything
        # else, as on AWS: ValidationException.
        ({"BatchSize": 20000, "MaximumBatchingWindowInSeconds": 5}, "ValidationException", "less than or equal to 10000"),
        ({"MaximumBatchingWindowInSeconds": 301}, "ValidationException", "less than or equal to 300"),
        ({"FunctionResponseTypes": ["Everything"]}, "ValidationException", "ReportBatchItemFailures"),
        ({"StartingPosition": "LATEST"}, "InvalidParameterValueException", "not valid for Amazon SQS"),
        ({"ScalingConfig": {"MaximumConcurrency": 5000}}, "ValidationException", "less than or equal to 1000"),
    ],
)
def test_bad_mappings_get_lambda_errors(lam, sqs, consumer, kwargs, error, words):
    _queue(sqs, f"{consumer}-q")
    args = {"EventSourceArn": _arn(f"{consumer}-q"), "FunctionName": consumer, **kwargs}
    # ValidationException is not in Lambda's model (botocore has no class
    # for it): every refusal is matched by its code.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_event_source_mapping(**args)
    assert e.value.response["Error"]["Code"] == error
    assert words in e.value.response["Error"]["Message"]


def test_visibility_timeout_shorter_than_the_function_timeout_is_refused(lam, sqs, deploy, fn_name):
    slow = deploy({"app.py": CONSUMER}, Timeout=60)
    _queue(sqs, f"{slow}-q", VisibilityTimeout=30)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_event_source_mapping(EventSourceArn=_arn(f"{slow}-q"), FunctionName=slow)
    assert e.value.response["Error"]["Message"] == "Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds"


def test_one_mapping_per_queue_and_function(lam, sqs, consumer):
    _queue(sqs, f"{consumer}-q")
    first = lam.create_event_source_mapping(EventSourceArn=_arn(f"{consumer}-q"), FunctionName=consumer)
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        lam.create_event_source_mapping(EventSourceArn=_arn(f"{consumer}-q"), FunctionName=consumer)
    assert first["UUID"] in e.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000", Enabled=False)


def test_mappings_survive_a_restart(tmp_path):
    with ServerProcess(tmp_path / "d") as srv:
        lam, sqs = srv.client(), srv.aws("sqs")
        lam.create_function(
            FunctionName="keeper",
            Role=ROLE,
            Handler="app.handler",
            Runtime=RUNTIME,
            Timeout=3,
            Code={"ZipFile": make_zip({"app.py": CONSUMER})},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName="keeper", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        _queue(sqs, "keeper-q")
        mapping = lam.create_event_source_mapping(EventSourceArn=_arn("keeper-q"), FunctionName="keeper")
        assert srv.stop() == 0
    again = ServerProcess(tmp_path / "d").start()
    try:
        url = again.aws("sqs").get_queue_url(QueueName="keeper-q")["QueueUrl"]
        assert again.client().get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
        again.aws("sqs").send_message(QueueUrl=url, MessageBody="after restart")
        wait_for(lambda: any("after restart" in b["bodies"] for b in _batches(again, "keeper")), timeout=60)
    finally:
        assert again.stop() == 0


def test_a_null_setting_is_an_absent_one(server, sqs, consumer):
    # JSON null is how a raw client leaves a member out: the default applies
    # (BatchSize 10 needs no batching window) instead of a 500.
    _queue(sqs, f"{consumer}-q")
    body = json.dumps(
        {"EventSourceArn": _arn(f"{consumer}-q"), "FunctionName": consumer, "BatchSize": None, "MaximumBatchingWindowInSeconds": None}
    ).encode()
    resp = signed_request(server, "POST", "/2015-03-31/event-source-mappings/", body, {"Content-Type": "application/json"})
    assert resp.status_code == 202, resp.text
    assert resp.json()["BatchSize"] == 10
    assert resp.json()["MaximumBatchingWindowInSeconds"] == 0
