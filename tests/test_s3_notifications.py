"""Bucket notifications to Lambda on a real server with real sandboxes:
S3's validation of destinations (the function's resource policy must let
s3.amazonaws.com invoke it), AWS's S3 event record, the events each change
causes, and the object and its event as one durable step across kill -9
at every point between the two SQLite files. Also the endpoint external
stores (MinIO, Ceph RGW) post their notifications to."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import botocore.exceptions
import pytest
import requests
from helpers import ServerProcess, make_zip, wait_for

ACCOUNT = "000000000000"
ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ECHO = "def handler(event, context):\n    return event\n"


def _function_arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"


class Setup:
    """A function that returns its event, its successes recorded in a queue
    (an OnSuccess destination), and a bucket that notifies it."""

    def __init__(
        self,
        server,
        name: str,
        bucket: str,
        *,
        events=("s3:ObjectCreated:*", "s3:ObjectRemoved:*"),
        prefix: str | None = None,
        suffix: str | None = None,
        grant: bool = True,
        create: bool = True,
    ) -> None:
        self.server = server
        self.lam = server.client()
        self.s3 = server.aws("s3")
        self.sqs = server.aws("sqs")
        self.name = name
        self.bucket = bucket
        if create:
            self.lam.create_function(
                FunctionName=name, Role=ROLE, Handler="app.handler", Runtime=RUNTIME, Code={"ZipFile": make_zip({"app.py": ECHO})}
            )
            self.lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            self.results = self.sqs.create_queue(QueueName=f"{name}-results")["QueueUrl"]
            self.lam.put_function_event_invoke_config(
                FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-results"}}
            )
            if grant:
                self.lam.add_permission(
                    FunctionName=name,
                    StatementId="s3",
                    Action="lambda:InvokeFunction",
                    Principal="s3.amazonaws.com",
                    SourceArn=f"arn:aws:s3:::{bucket}",
                    SourceAccount=ACCOUNT,
                )
            self.s3.create_bucket(Bucket=bucket)
            self.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [self.rule(events, prefix, suffix)]}
            )
        else:
            self.results = self.sqs.get_queue_url(QueueName=f"{name}-results")["QueueUrl"]
        self.seen: list[dict] = []

    def rule(self, events, prefix=None, suffix=None, name=None) -> dict:
        rule = {"Id": "to-lambda", "LambdaFunctionArn": _function_arn(name or self.name), "Events": list(events)}
        rules = [{"Name": n, "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix)) if v is not None]
        if rules:
            rule["Filter"] = {"Key": {"FilterRules": rules}}
        return rule

    def records(self) -> list[dict]:
        """Every S3 record the function has received so far."""
        for m in self.sqs.receive_message(QueueUrl=self.results, MaxNumberOfMessages=10).get("Messages", []):
            self.seen += json.loads(m["Body"])["responsePayload"]["Records"]
            self.sqs.delete_message(QueueUrl=self.results, ReceiptHandle=m["ReceiptHandle"])
        return self.seen

    def wait_for_key(self, key: str, event: str | None = None, timeout: float = 60) -> dict:
        def found():
            for r in self.records():
                if r["s3"]["object"]["key"] == key and (event is None or r["eventName"] == event):
                    return r
            return None

        return wait_for(found, timeout=timeout)

    def count(self, key: str) -> int:
        return sum(1 for r in self.records() if r["s3"]["object"]["key"] == key)


def test_aws_s3_cp_invokes_the_function_with_the_aws_record(server, tmp_path):
    setup = Setup(server, "s3-cp-fn", "cp-bkt")
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    assert aws is not None, "the aws CLI (awscli, a test dependency) is not installed"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": server.url,
        "AWS_SHARED_CREDENTIALS_FILE": str(server.data_dir / "credentials"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
    }
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(var, None)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    done = subprocess.run(
        [aws, "s3", "cp", str(tmp_path / "x.csv"), "s3://cp-bkt/in/x.csv", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    record = setup.wait_for_key("in/x.csv")
    key_id, _ = server.credentials()
    etag = setup.s3.head_object(Bucket="cp-bkt", Key="in/x.csv")["ETag"].strip('"')
    assert record["eventVersion"] == "2.1" and record["eventSource"] == "aws:s3" and record["awsRegion"] == "us-east-1"
    assert record["eventName"] == "ObjectCreated:Put" and record["eventTime"].endswith("Z")
    assert record["userIdentity"] == {"principalId": f"AWS:{key_id}"}
    assert record["requestParameters"] == {"sourceIPAddress": "127.0.0.1"}
    assert set(record["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
    s3 = record["s3"]
    assert s3["s3SchemaVersion"] == "1.0" and s3["configurationId"] == "to-lambda"
    assert (
        s3["bucket"]["name"] == "cp-bkt" and s3["bucket"]["arn"] == "arn:aws:s3:::cp-bkt" and s3["bucket"]["ownerIdentity"]["principalId"]
    )
    assert s3["object"]["size"] == 8 and s3["object"]["eTag"] == etag and len(s3["object"]["sequencer"]) == 16
    assert "versionId" not in s3["object"]  # the bucket is not versioned


def test_each_change_has_its_event_and_keys_are_url_encoded(server):
    setup = Setup(server, "s3-kinds-fn", "kinds-bkt")
    s3 = setup.s3
    s3.put_object(Bucket="kinds-bkt", Key="red flower+1.jpg", Body=b"x")
    assert setup.wait_for_key("red+flower%2B1.jpg", "ObjectCreated:Put")
    s3.copy_object(Bucket="kinds-bkt", Key="copy", CopySource={"Bucket": "kinds-bkt", "Key": "red flower+1.jpg"})
    assert setup.wait_for_key("copy", "ObjectCreated:Copy")["s3"]["object"]["size"] == 1
    upload = s3.create_multipart_upload(Bucket="kinds-bkt", Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket="kinds-bkt", Key="mp", UploadId=upload, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(
        Bucket="kinds-bkt", Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert setup.wait_for_key("mp", "ObjectCreated:CompleteMultipartUpload")["s3"]["object"]["eTag"].endswith("-1")
    s3.delete_object(Bucket="kinds-bkt", Key="copy")
    removed = setup.wait_for_key("copy", "ObjectRemoved:Delete")
    assert set(removed["s3"]["object"]) == {"key", "sequencer"}
    s3.delete_objects(Bucket="kinds-bkt", Delete={"Objects": [{"Key": "mp"}, {"Key": "never-there"}]})
    assert setup.wait_for_key("mp", "ObjectRemoved:Delete")
    sequencers = [int(r["s3"]["object"]["sequencer"], 16) for r in setup.records()]
    assert len(set(sequencers)) == len(sequencers)
    assert setup.count("never-there") == 0


def test_filters_choose_the_keys(server):
    setup = Setup(server, "s3-filter-fn", "filter-bkt", events=("s3:ObjectCreated:Put",), prefix="in/", suffix=".csv")
    for key in ("out/a.csv", "in/a.json", "in/a.csv"):
        setup.s3.put_object(Bucket="filter-bkt", Key=key, Body=b"x")
    setup.s3.delete_object(Bucket="filter-bkt", Key="in/a.csv")  # not a configured event
    setup.s3.put_object(Bucket="filter-bkt", Key="in/last.csv", Body=b"x")
    setup.wait_for_key("in/last.csv")
    assert sorted(r["s3"]["object"]["key"] for r in setup.records()) == ["in/a.csv", "in/last.csv"]


def test_destinations_s3_cannot_invoke_are_refused(server):
    lam, s3 = server.client(), server.aws("s3")
    s3.create_bucket(Bucket="validate-bkt")
    lam.create_function(
        FunctionName="s3-no-grant", Role=ROLE, Handler="app.handler", Runtime=RUNTIME, Code={"ZipFile": make_zip({"app.py": ECHO})}
    )
    lam.add_permission(
        FunctionName="s3-no-grant",
        StatementId="other-bucket",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::some-other-bucket",
    )

    def put(name):
        s3.put_bucket_notification_configuration(
            Bucket="validate-bkt",
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [{"LambdaFunctionArn": _function_arn(name), "Events": ["s3:ObjectCreated:*"]}]
            },
        )

    for name in ("s3-no-such-function", "s3-no-grant"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            put(name)
        error = e.value.response["Error"]
        assert error["Code"] == "InvalidArgument" and error["Message"] == "Unable to validate the following destination configurations"
        assert error["ArgumentName1"] == _function_arn(name)
        assert error["ArgumentValue1"] == f"Not authorized to invoke function [{_function_arn(name)}]"
    assert s3.get_bucket_notification_configuration(Bucket="validate-bkt").get("LambdaFunctionConfigurations") is None
    lam.add_permission(
        FunctionName="s3-no-grant",
        StatementId="this-bucket",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::validate-bkt",
    )
    with pytest.raises(lam.exceptions.ResourceConflictException):  # a statement id that exists
        lam.add_permission(
            FunctionName="s3-no-grant",
            StatementId="this-bucket",
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn="arn:aws:s3:::validate-bkt",
        )
    put("s3-no-grant")
    got = s3.get_bucket_notification_configuration(Bucket="validate-bkt")["LambdaFunctionConfigurations"]
    assert got[0]["LambdaFunctionArn"] == _function_arn("s3-no-grant") and got[0]["Events"] == ["s3:ObjectCreated:*"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_bucket_notification_configuration(
            Bucket="validate-bkt",
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [
                    {"LambdaFunctionArn": _function_arn("s3-no-grant"), "Events": ["s3:ObjectCreated:*"]},
                    {
                        "LambdaFunctionArn": _function_arn("s3-no-grant"),
                        "Events": ["s3:ObjectCreated:Put"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}},
                    },
                ]
            },
        )
    assert e.value.response["Error"]["Code"] == "InvalidArgument" and "overlapping" in e.value.response["Error"]["Message"]
    # The refused configuration left the stored one as it was.
    assert len(s3.get_bucket_notification_configuration(Bucket="validate-bkt")["LambdaFunctionConfigurations"]) == 1


def test_a_permission_removed_later_stops_the_events(server):
    setup = Setup(server, "s3-revoked-fn", "revoked-bkt")
    setup.s3.put_object(Bucket="revoked-bkt", Key="before", Body=b"x")
    setup.wait_for_key("before")
    setup.lam.remove_permission(FunctionName="s3-revoked-fn", StatementId="s3")
    setup.s3.put_object(Bucket="revoked-bkt", Key="after", Body=b"x")
    wait_for(lambda: any("dropped" in line and "s3-revoked-fn" in line for line in server.output), timeout=30)
    assert setup.count("after") == 0


# -- one durable step: kill -9 between the two files ---------------------------------------


def running(tmp_path, env=None) -> ServerProcess:
    """A server on tmp_path/d, stopped whatever the test body does."""
    return ServerProcess(tmp_path / "d", env=env)


def test_kill_9_right_after_the_puts_200_still_delivers_the_event(tmp_path):
    with running(tmp_path) as srv:
        setup = Setup(srv, "s3-kill-fn", "kill-bkt")
        # Held (reserved concurrency 0 throttles it), so that the event is
        # still queued when the server dies, whichever file holds it then.
        setup.lam.put_function_concurrency(FunctionName="s3-kill-fn", ReservedConcurrentExecutions=0)
        setup.s3.put_object(Bucket="kill-bkt", Key="in/x.csv", Body=b"committed")
        srv.stop(signal.SIGKILL)
    again = ServerProcess(tmp_path / "d").start()
    try:
        after = Setup(again, "s3-kill-fn", "kill-bkt", create=False)
        after.lam.delete_function_concurrency(FunctionName="s3-kill-fn")
        assert after.wait_for_key("in/x.csv")["eventName"] == "ObjectCreated:Put"
        after.s3.put_object(Bucket="kill-bkt", Key="sentinel", Body=b"x")
        after.wait_for_key("sentinel")
        assert after.count("in/x.csv") == 1
        assert after.s3.get_object(Bucket="kill-bkt", Key="in/x.csv")["Body"].read() == b"committed"
    finally:
        assert again.stop() == 0


@pytest.mark.parametrize("point", ["s3.put.committed", "s3.outbox.handed_over", "s3.outbox.synced"])
def test_a_crash_between_the_two_files_neither_loses_nor_doubles_the_event(tmp_path, point):
    with running(tmp_path) as first:
        Setup(first, "s3-crash-fn", "crash-bkt")
    with running(tmp_path, env={"LAMBDALET_CRASH_AT": point}) as armed:
        try:
            armed.aws("s3").put_object(Bucket="crash-bkt", Key="k", Body=b"v")
        except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError, requests.ConnectionError):
            pass  # the server died before its answer: the object is committed all the same
        assert armed.proc.wait(timeout=30) == -signal.SIGKILL
    again = ServerProcess(tmp_path / "d").start()
    try:
        setup = Setup(again, "s3-crash-fn", "crash-bkt", create=False)
        assert setup.s3.get_object(Bucket="crash-bkt", Key="k")["Body"].read() == b"v"
        setup.wait_for_key("k")
        setup.s3.put_object(Bucket="crash-bkt", Key="sentinel", Body=b"x")
        setup.wait_for_key("sentinel")
        assert setup.count("k") == 1
    finally:
        assert again.stop() == 0


def test_no_event_for_an_object_that_was_not_stored(tmp_path):
    with running(tmp_path) as first:
        Setup(first, "s3-unstored-fn", "unstored-bkt")
    with running(tmp_path, env={"LAMBDALET_CRASH_AT": "s3.put.staged"}) as armed:
        with pytest.raises((botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)):
            armed.aws("s3").put_object(Bucket="unstored-bkt", Key="lost", Body=b"never committed")
        assert armed.proc.wait(timeout=30) == -signal.SIGKILL
    again = ServerProcess(tmp_path / "d").start()
    try:
        setup = Setup(again, "s3-unstored-fn", "unstored-bkt", create=False)
        with pytest.raises(botocore.exceptions.ClientError):
            setup.s3.head_object(Bucket="unstored-bkt", Key="lost")
        setup.s3.put_object(Bucket="unstored-bkt", Key="sentinel", Body=b"x")
        setup.wait_for_key("sentinel")
        assert setup.count("lost") == 0
        # The blob written before the crash was removed at start-up.
        blobs = [p for p in (tmp_path / "d" / "s3" / "blobs").rglob("*") if p.is_file()]
        assert len(blobs) == 1
    finally:
        assert again.stop() == 0


# -- notifications from external stores -------------------------------------------------

MINIO_RECORD = {
    "eventVersion": "2.0",
    "eventSource": "minio:s3",
    "awsRegion": "",
    "eventTime": "2025-01-01T00:00:00.000Z",
    "eventName": "s3:ObjectCreated:Put",
    "userIdentity": {"principalId": "minioadmin"},
    "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "10.0.0.5"},
    "responseElements": {
        "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
        "x-amz-request-id": "17E1A0E2F1D3E4F5",
        "x-minio-deployment-id": "6b3e6e34",
        "x-minio-origin-endpoint": "http://10.0.0.5:9000",
    },
    "s3": {
        "s3SchemaVersion": "1.0",
        "configurationId": "Config",
        "bucket": {"name": "ext-bkt", "ownerIdentity": {"principalId": "minioadmin"}, "arn": "arn:aws:s3:::ext-bkt"},
        "object": {
            "key": "in%2Fa.csv",
            "size": 4,
            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
            "contentType": "text/csv",
            "userMetadata": {"content-type": "text/csv"},
            "sequencer": "17E1A0E2F1D3E4F5",
        },
    },
    "source": {"host": "10.0.0.5", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"},
}


def test_external_store_notifications(server):
    setup = Setup(server, "s3-external-fn", "ext-bkt")
    token = (server.data_dir / "s3-events-token").read_text().strip()
    assert (server.data_dir / "s3-events-token").stat().st_mode & 0o077 == 0
    url = f"{server.url}/_lambdalet/s3-events/s3-external-fn"
    body = {"EventName": "s3:ObjectCreated:Put", "Key": "ext-bkt/in/a.csv", "Records": [MINIO_RECORD]}
    # MinIO's webhook target: the token in the Authorization header.
    r = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 202, r.text
    got = setup.wait_for_key("in%2Fa.csv")
    assert got == MINIO_RECORD  # passed on as the store sent it
    # Ceph RGW's HTTP push endpoint: the token in the query string.
    ceph = dict(MINIO_RECORD, eventSource="ceph:s3", s3={**MINIO_RECORD["s3"], "object": {"key": "ceph-key", "size": 1}})
    r = requests.post(f"{url}?token={token}", json={"Records": [ceph]}, timeout=10)
    assert r.status_code == 202, r.text
    assert setup.wait_for_key("ceph-key")["eventSource"] == "ceph:s3"
    assert requests.head(f"{url}?token={token}", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "how,status,error",
    [
        ({"headers": {}}, 403, "AccessDeniedException"),
        ({"headers": {"Authorization": "Bearer wrong"}}, 403, "AccessDeniedException"),
        ({"data": b"not json"}, 400, "InvalidRequestContentException"),
        ({"json": {"Records": []}}, 400, "InvalidRequestContentException"),
        ({"json": {"Records": [{"s3": {}}]}}, 400, "InvalidRequestContentException"),
        ({"path": "no-such-function"}, 404, "ResourceNotFoundException"),
        (
            {"json": {"Records": [dict(MINIO_RECORD, s3={**MINIO_RECORD["s3"], "bucket": {"name": "not-granted-bkt"}})]}},
            403,
            "AccessDeniedException",
        ),
    ],
)
def test_external_store_bad_input(server, how, status, error):
    Setup(server, "s3-ext-bad-fn", "ext-bad-bkt") if not _exists(server, "s3-ext-bad-fn") else None
    token = (server.data_dir / "s3-events-token").read_text().strip()
    url = f"{server.url}/_lambdalet/s3-events/{how.get('path', 's3-ext-bad-fn')}"
    headers = how.get("headers", {"Authorization": f"Bearer {token}"})
    kwargs = {"json": how["json"]} if "json" in how else {"data": how.get("data", json.dumps({"Records": [MINIO_RECORD]}).encode())}
    r = requests.post(url, headers=headers, timeout=10, **kwargs)
    assert r.status_code == status and r.headers["x-amzn-ErrorType"] == error, r.text


def _exists(server, name: str) -> bool:
    try:
        server.client().get_function(FunctionName=name)
        return True
    except botocore.exceptions.ClientError:
        return False
