"""The built-in queues through boto3's sqs client (JSON protocol) and the
query protocol older SDKs speak, on a real server: SQS's operations, its
errors with both their names, visibility, long polling, redrive, and
shapes checked against botocore's model."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import struct
import threading
import urllib.parse
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests
from helpers import ServerProcess, wait_for
from s3_shapes import assert_json_output

NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"


@pytest.fixture(scope="module")
def sqs(server):
    client = server.aws("sqs")
    client.seen = {}
    client.meta.events.register(
        "after-call.sqs", lambda http_response, model, **_: client.seen.__setitem__(model.name, http_response.content)
    )
    return client


def _code(exc) -> str:
    return exc.response["Error"]["Code"]


def _queue(sqs, name: str, **attributes) -> str:
    return sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]


def test_queue_lifecycle_and_shapes(sqs):
    url = _queue(sqs, "life-q", VisibilityTimeout=45)
    assert url.endswith("/000000000000/life-q")
    assert_json_output("sqs", "CreateQueue", sqs.seen["CreateQueue"])
    assert sqs.get_queue_url(QueueName="life-q")["QueueUrl"] == url
    assert _queue(sqs, "life-q", VisibilityTimeout=45) == url  # the same attributes: the same queue
    with pytest.raises(sqs.exceptions.QueueNameExists):
        _queue(sqs, "life-q", VisibilityTimeout=46)
    urls = sqs.list_queues(QueueNamePrefix="life-")["QueueUrls"]
    assert urls == [url]
    assert_json_output("sqs", "ListQueues", sqs.seen["ListQueues"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "45" and attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:life-q"
    assert attrs["ApproximateNumberOfMessages"] == "0" and attrs["MaximumMessageSize"] == "1048576"
    assert_json_output("sqs", "GetQueueAttributes", sqs.seen["GetQueueAttributes"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "2"})
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds"])["Attributes"] == {"DelaySeconds": "2"}
    sqs.tag_queue(QueueUrl=url, Tags={"team": "edge"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "edge"}
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName="life-q")
    # The code botocore reports is SQS's query code, as against AWS.
    assert _code(e.value) == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.QueueDeletedRecently):
        _queue(sqs, "life-q")


def test_the_dead_letter_queue_is_always_there(sqs):
    url = sqs.get_queue_url(QueueName="lambdalet-dlq")["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"].endswith(":lambdalet-dlq")


def test_send_receive_delete_with_attributes(sqs):
    url = _queue(sqs, "msg-q")
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="héllo",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "greeting"},
            "n": {"DataType": "Number", "StringValue": "3"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    assert_json_output("sqs", "SendMessage", sqs.seen["SendMessage"])
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == _md5_of_attributes(
        {"kind": ("String", b"greeting", 1), "n": ("Number", b"3", 1), "raw": ("Binary", b"\x00\x01", 2)}
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
    assert_json_output("sqs", "ReceiveMessage", sqs.seen["ReceiveMessage"])
    (msg,) = got["Messages"]
    assert msg["Body"] == "héllo" and msg["MessageId"] == sent["MessageId"]
    assert msg["MessageAttributes"]["raw"] == {"BinaryValue": b"\x00\x01", "DataType": "Binary"}
    assert msg["Attributes"]["ApproximateReceiveCount"] == "1" and msg["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # invisible now
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def _md5_of_attributes(attrs: dict) -> str:
    # SQS's documented encoding, written out independently of the server's.
    out = b""
    for name in sorted(attrs):
        data_type, value, transport = attrs[name]
        out += struct.pack(">I", len(name)) + name.encode()
        out += struct.pack(">I", len(data_type)) + data_type.encode()
        out += bytes([transport]) + struct.pack(">I", len(value)) + value
    return hashlib.md5(out).hexdigest()


def test_batches(sqs):
    url = _queue(sqs, "batch-q")
    result = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": f"body {i}"} for i in range(10)] + [])
    assert len(result["Successful"]) == 10 and result.get("Failed", []) == []
    assert_json_output("sqs", "SendMessageBatch", sqs.seen["SendMessageBatch"])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == sorted(f"body {i}" for i in range(10))
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0}]
    )
    assert changed["Successful"] == [{"Id": "a"}]
    deleted = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got[1:])]
    )
    assert len(deleted["Successful"]) == 9
    assert_json_output("sqs", "DeleteMessageBatch", sqs.seen["DeleteMessageBatch"])
    again = sqs.receive_message(QueueUrl=url)["Messages"]
    assert again[0]["Body"] == got[0]["Body"]
    mixed = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "ok", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": "nul\x00"}])
    assert [s["Id"] for s in mixed["Successful"]] == ["ok"] and mixed["Failed"][0]["Id"] == "bad"
    assert mixed["Failed"][0]["Code"] == "InvalidMessageContents" and mixed["Failed"][0]["SenderFault"] is True


@pytest.mark.parametrize(
    "call,code,exception",
    [
        (lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[]), "AWS.SimpleQueueService.EmptyBatchRequest", "EmptyBatchRequest"),
        (
            lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)]),
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            "TooManyEntriesInBatchRequest",
        ),
        (
            lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}]),
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            "BatchEntryIdsNotDistinct",
        ),
        (
            lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[{"Id": "no spaces", "MessageBody": "x"}]),
            "AWS.SimpleQueueService.InvalidBatchEntryId",
            "InvalidBatchEntryId",
        ),
        (lambda s, u: s.delete_message(QueueUrl=u, ReceiptHandle="garbage"), "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid"),
        (lambda s, u: s.send_message(QueueUrl=u, MessageBody="bad \x01 char"), "InvalidMessageContents", "InvalidMessageContents"),
        (
            lambda s, u: s.set_queue_attributes(QueueUrl=u, Attributes={"VisibilityTimeout": "50000"}),
            "InvalidAttributeValue",
            "InvalidAttributeValue",
        ),
        (lambda s, u: s.set_queue_attributes(QueueUrl=u, Attributes={"Colour": "blue"}), "InvalidAttributeName", "InvalidAttributeName"),
        (lambda s, u: s.get_queue_attributes(QueueUrl=u, AttributeNames=["Bogus"]), "InvalidAttributeName", "InvalidAttributeName"),
        (
            lambda s, u: s.create_queue(QueueName="x.fifo", Attributes={"FifoQueue": "true"}),
            "AWS.SimpleQueueService.UnsupportedOperation",
            "UnsupportedOperation",
        ),
        (
            lambda s, u: s.send_message(QueueUrl=u + "-missing", MessageBody="x"),
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ),
    ],
)
def test_bad_input_gets_sqs_errors(sqs, call, code, exception):
    url = _queue(sqs, "errors-q")
    with pytest.raises(getattr(sqs.exceptions, exception)) as e:
        call(sqs, url)
    assert _code(e.value) == code
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)


def test_unmodeled_errors_are_sqs_words(sqs):
    url = _queue(sqs, "params-q", MaximumMessageSize=1024)
    for call in (
        lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * 1025),
        lambda: sqs.create_queue(QueueName="bad name!"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert _code(e.value) == "InvalidParameterValue"


def test_visibility_and_message_not_inflight(sqs):
    url = _queue(sqs, "vis-q")
    sqs.send_message(QueueUrl=url, MessageBody="v")
    msg = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]  # visible again at once
    with pytest.raises(sqs.exceptions.MessageNotInflight):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=10)
    msg = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert msg["Body"] == "v"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "v"


def test_long_polling_returns_a_message_sent_while_it_waits(server, sqs):
    url = _queue(sqs, "poll-q")
    other = server.aws("sqs")
    got = {}

    def receive():
        got["r"] = other.receive_message(QueueUrl=url, WaitTimeSeconds=20)

    t = threading.Thread(target=receive)
    t.start()
    sqs.send_message(QueueUrl=url, MessageBody="late")
    t.join(timeout=30)
    assert got["r"]["Messages"][0]["Body"] == "late"


def test_redrive_policy_moves_to_the_dlq_after_max_receive_count(sqs):
    dlq = _queue(sqs, "redrive-dlq")
    url = _queue(
        sqs,
        "redrive-src",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:redrive-dlq", "maxReceiveCount": 2}),
    )
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]["Body"] == "poison"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    moved = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"][0]
    assert moved["Body"] == "poison"
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]
    with pytest.raises(sqs.exceptions.InvalidAttributeValue):
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:nowhere", "maxReceiveCount": 2})
            },
        )


def test_purge(sqs):
    url = _queue(sqs, "purge-q")
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.purge_queue(QueueUrl=url)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress):
        sqs.purge_queue(QueueUrl=url)


def test_async_failures_are_sqs_messages_of_the_dead_letter_queue(deploy, lam, sqs, fn_name):
    name = deploy({"app.py": "def handler(e, c):\n    raise RuntimeError('boom')\n"})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    dlq = sqs.get_queue_url(QueueName="lambdalet-dlq")["QueueUrl"]
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"to": "dlq"}')

    def mine():
        for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
            record = json.loads(m["Body"])
            if record["requestContext"]["functionArn"].endswith(f":{name}:$LATEST"):
                return m, record
        return None

    msg, record = wait_for(mine, timeout=30)
    assert record["requestPayload"] == {"to": "dlq"} and record["requestContext"]["condition"] == "RetriesExhausted"


# -- the query protocol ----------------------------------------------------------------


def _query(server, params: dict, path: str = "/") -> requests.Response:
    key, secret = server.credentials()
    body = urllib.parse.urlencode({**params, "Version": "2012-11-05"})
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=f"{server.url}{path}",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "sqs", "us-east-1").add_auth(request)
    return requests.post(f"{server.url}{path}", data=body.encode(), headers=dict(request.headers), timeout=30)


def test_the_query_protocol(server):
    r = _query(
        server, {"Action": "CreateQueue", "QueueName": "query-q", "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "40"}
    )
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    assert root.tag == f"{NS}CreateQueueResponse"
    url = root.find(f"{NS}CreateQueueResult/{NS}QueueUrl").text
    assert root.find(f"{NS}ResponseMetadata/{NS}RequestId").text
    r = _query(
        server,
        {
            "Action": "SendMessage",
            "QueueUrl": url,
            "MessageBody": "q&<body>",
            "MessageAttribute.1.Name": "k",
            "MessageAttribute.1.Value.DataType": "String",
            "MessageAttribute.1.Value.StringValue": "v",
        },
    )
    result = ET.fromstring(r.content).find(f"{NS}SendMessageResult")
    assert result.find(f"{NS}MD5OfMessageBody").text == hashlib.md5(b"q&<body>").hexdigest()
    assert result.find(f"{NS}MessageId").text and result.find(f"{NS}MD5OfMessageAttributes").text
    # Sent to the queue's own URL, as query clients do: the path names the queue.
    path = urllib.parse.urlsplit(url).path
    r = _query(
        server,
        {"Action": "ReceiveMessage", "AttributeName.1": "All", "MessageAttributeName.1": "All", "MaxNumberOfMessages": "5"},
        path=path,
    )
    msg = ET.fromstring(r.content).find(f"{NS}ReceiveMessageResult/{NS}Message")
    assert msg.find(f"{NS}Body").text == "q&<body>"
    attributes = {a.find(f"{NS}Name").text: a.find(f"{NS}Value").text for a in msg.findall(f"{NS}Attribute")}
    assert attributes["ApproximateReceiveCount"] == "1"
    (attr,) = msg.findall(f"{NS}MessageAttribute")
    assert attr.find(f"{NS}Name").text == "k" and attr.find(f"{NS}Value/{NS}StringValue").text == "v"
    r = _query(server, {"Action": "DeleteMessage", "QueueUrl": url, "ReceiptHandle": msg.find(f"{NS}ReceiptHandle").text})
    assert ET.fromstring(r.content).tag == f"{NS}DeleteMessageResponse"
    r = _query(server, {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "VisibilityTimeout"})
    (attr,) = ET.fromstring(r.content).findall(f"{NS}GetQueueAttributesResult/{NS}Attribute")
    assert (attr.find(f"{NS}Name").text, attr.find(f"{NS}Value").text) == ("VisibilityTimeout", "40")
    r = _query(server, {"Action": "GetQueueUrl", "QueueName": "no-such-queue"})
    assert r.status_code == 400
    error = ET.fromstring(r.content).find(f"{NS}Error")
    assert error.find(f"{NS}Code").text == "AWS.SimpleQueueService.NonExistentQueue" and error.find(f"{NS}Type").text == "Sender"
    r = _query(server, {"Action": "ExplodeQueue"})
    assert ET.fromstring(r.content).find(f"{NS}Error/{NS}Code").text == "InvalidAction"


def test_unsigned_and_badly_signed_requests_are_refused(server):
    r = requests.post(
        server.url + "/",
        data=b"{}",
        headers={"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"},
        timeout=10,
    )
    assert r.status_code == 403 and r.headers["x-amzn-query-error"].startswith("MissingAuthenticationToken")
    key, _ = server.credentials()
    import boto3
    import botocore.config

    wrong = boto3.client(
        "sqs",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="x" * 40,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as e:
        wrong.list_queues()
    assert _code(e.value) == "SignatureDoesNotMatch"


def test_a_sent_message_survives_kill_9(tmp_path):
    with ServerProcess(tmp_path / "d") as srv:
        sqs = srv.aws("sqs")
        url = sqs.create_queue(QueueName="durable-q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="kept")
        srv.stop(signal.SIGKILL)
    again = ServerProcess(tmp_path / "d").start()
    try:
        got = again.aws("sqs").receive_message(QueueUrl=url.replace(srv.url, again.url))["Messages"]
        assert got[0]["Body"] == "kept"
    finally:
        assert again.stop() == 0


def test_receipt_handles_are_opaque_but_checked():
    from lambdalet.gateway.events.sqs.errors import SqsError
    from lambdalet.gateway.events.sqs.message_checks import parse_receipt

    good = base64.urlsafe_b64encode(b"12." + b"a" * 32).decode()
    assert parse_receipt(good) == (12, "a" * 32)
    for bad in ("", "x", base64.urlsafe_b64encode(b"12.zz").decode(), base64.urlsafe_b64encode(b"-1." + b"a" * 32).decode()):
        with pytest.raises(SqsError):
            parse_receipt(bad)


def test_lambdalets_queue_api_reads_messages_sent_through_sqs(server, sqs):
    url = _queue(sqs, "mixed-q")
    sqs.send_message(QueueUrl=url, MessageBody="plain text, not JSON")
    key, secret = server.credentials()

    def call(method: str, path: str, body: bytes = b""):
        request = botocore.awsrequest.AWSRequest(method=method, url=f"{server.url}{path}", data=body)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda", "us-east-1").add_auth(request)
        return requests.request(method, f"{server.url}{path}", data=body, headers=dict(request.headers), timeout=10)

    listed = call("GET", "/_lambdalet/queues/mixed-q/messages")
    assert listed.status_code == 200, listed.text
    assert listed.json()["Messages"][0]["Body"] == "plain text, not JSON"
    # It came from no function's event: redrive leaves it where it is.
    assert call("POST", "/_lambdalet/queues/mixed-q/redrive", b"{}").json() == {"Redriven": 0}
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "plain text, not JSON"
