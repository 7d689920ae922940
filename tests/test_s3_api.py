"""The built-in object store through boto3's s3 client, the aws CLI and raw
signed HTTP, on a real server: S3's operations, S3's errors for every bad
input, the signing variants clients use, and shapes checked against
botocore's model."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests
from helpers import ServerProcess, make_test_cert
from s3_shapes import assert_s3_error, assert_s3_output

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(server):
    return server.aws("s3")


class Captured:
    """The raw bodies of the responses a client received, by operation."""

    def __init__(self, client) -> None:
        self.bodies: dict[str, bytes] = {}
        client.meta.events.register("after-call.s3", self._after)

    def _after(self, http_response, model, **_):
        # A streaming answer's body is the caller's to read; an error's is not streamed.
        if not model.has_streaming_output or http_response.status_code >= 300:
            self.bodies[model.name] = http_response.content


def _code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


def _bucket(s3, name: str) -> str:
    s3.create_bucket(Bucket=name)
    return name


# -- buckets ----------------------------------------------------------------------


def test_bucket_lifecycle_and_listing(server):
    s3 = server.aws("s3")
    seen = Captured(s3)
    s3.create_bucket(Bucket="lifecycle-bkt")
    assert s3.head_bucket(Bucket="lifecycle-bkt")["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "lifecycle-bkt" in names
    assert_s3_output("ListBuckets", seen.bodies["ListBuckets"])
    assert s3.get_bucket_location(Bucket="lifecycle-bkt")["LocationConstraint"] is None
    # us-east-1 answers 200 to a bucket its owner creates again, as S3 does there.
    s3.create_bucket(Bucket="lifecycle-bkt")
    s3.put_object(Bucket="lifecycle-bkt", Key="k", Body=b"v")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="lifecycle-bkt")
    assert _code(e.value) == "BucketNotEmpty" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert s3.get_object(Bucket="lifecycle-bkt", Key="k")["Body"].read() == b"v"  # nothing lost
    s3.delete_object(Bucket="lifecycle-bkt", Key="k")
    s3.delete_bucket(Bucket="lifecycle-bkt")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="lifecycle-bkt")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("name", ["ab", "Upper-Case", "under_score", "-leading", "two..dots", "10.1.2.3", "xn--punycode", "x" * 64])
def test_bucket_names_outside_s3_rules_are_invalid_bucket_name(s3, name):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert _code(e.value) == "InvalidBucketName"
    assert e.value.response["Error"]["BucketName"] == name
    assert e.value.response["Error"]["Message"] == "The specified bucket is not valid."


def test_no_such_bucket(s3):
    for call in (
        lambda: s3.list_objects_v2(Bucket="never-made"),
        lambda: s3.put_object(Bucket="never-made", Key="k", Body=b"x"),
        lambda: s3.get_object(Bucket="never-made", Key="k"),
        lambda: s3.delete_bucket(Bucket="never-made"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert _code(e.value) == "NoSuchBucket" and e.value.response["Error"]["BucketName"] == "never-made"


# -- objects ----------------------------------------------------------------------


def test_put_get_head_with_metadata_ranges_and_shapes(s3):
    bkt = _bucket(s3, "objects-bkt")
    seen = Captured(s3)
    put = s3.put_object(
        Bucket=bkt,
        Key="in/x.csv",
        Body=b"0123456789",
        ContentType="text/csv",
        Metadata={"owner": "me", "Mixed-Case": "V"},
        CacheControl="no-cache",
        ContentDisposition="inline",
    )
    assert put["ETag"] == f'"{hashlib.md5(b"0123456789").hexdigest()}"'
    got = s3.get_object(Bucket=bkt, Key="in/x.csv")
    assert got["Body"].read() == b"0123456789"
    assert got["ContentType"] == "text/csv" and got["Metadata"] == {"owner": "me", "mixed-case": "V"}
    assert got["CacheControl"] == "no-cache" and got["ContentDisposition"] == "inline" and got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bkt, Key="in/x.csv")
    assert head["ContentLength"] == 10 and head["AcceptRanges"] == "bytes"
    for rng, want, content_range in (
        ("bytes=2-4", b"234", "bytes 2-4/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-2", b"89", "bytes 8-9/10"),
        ("bytes=5-100", b"56789", "bytes 5-9/10"),
    ):
        part = s3.get_object(Bucket=bkt, Key="in/x.csv", Range=rng)
        assert part["Body"].read() == want and part["ContentRange"] == content_range
        assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bkt, Key="in/x.csv", Range="bytes=10-")
    assert _code(e.value) == "InvalidRange" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bkt, Key="missing")
    assert _code(e.value) == "NoSuchKey" and e.value.response["Error"]["Key"] == "missing"
    assert_s3_error(seen.bodies["GetObject"], "NoSuchKey")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bkt, Key="missing")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # botocore's default CRC32 checksum was checked on the way in and is
    # returned when asked for, and botocore checks it on the way out.
    checked = s3.get_object(Bucket=bkt, Key="in/x.csv", ChecksumMode="ENABLED")
    assert checked["ChecksumCRC32"] == base64.b64encode((__import__("zlib").crc32(b"0123456789")).to_bytes(4, "big")).decode()
    assert checked["Body"].read() == b"0123456789"


def test_empty_object_and_keys_s3_allows(s3):
    bkt = _bucket(s3, "keys-bkt")
    for key in ("empty", "sp ace+plus%pct", "ünïcödé/ключ", "a/../b", "trailing/", "x" * 1024):
        s3.put_object(Bucket=bkt, Key=key, Body=b"" if key == "empty" else key.encode())
        assert s3.get_object(Bucket=bkt, Key=key)["Body"].read() == (b"" if key == "empty" else key.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bkt)["Contents"]]
    assert "sp ace+plus%pct" in listed and "ünïcödé/ключ" in listed


def test_key_too_long(s3):
    bkt = _bucket(s3, "long-key-bkt")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bkt, Key="k" * 1025, Body=b"x")
    assert _code(e.value) == "KeyTooLongError"
    assert "Contents" not in s3.list_objects_v2(Bucket=bkt)


def test_conditional_reads(s3):
    bkt = _bucket(s3, "cond-bkt")
    etag = s3.put_object(Bucket=bkt, Key="k", Body=b"v")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bkt, Key="k", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bkt, Key="k", IfMatch='"0000"')
    assert _code(e.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bkt, Key="k", IfMatch=etag)["Body"].read() == b"v"
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bkt, Key="k", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    # A conditional write: If-None-Match: * refuses to overwrite.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bkt, Key="k", Body=b"other", IfNoneMatch="*")
    assert _code(e.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bkt, Key="k")["Body"].read() == b"v"


def _tamper(client, event: str, header: str, value: str) -> None:
    def before_sign(request, **_):
        del request.headers[header]  # (HTTPHeaders would otherwise add a second one)
        request.headers[header] = value

    client.meta.events.register(event, before_sign)


def test_digest_mismatches_are_bad_digest_and_store_nothing(server):
    s3 = server.aws("s3")
    bkt = _bucket(s3, "digest-bkt")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bkt, Key="md5", Body=b"payload", ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    assert _code(e.value) == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bkt, Key="md5", Body=b"payload", ContentMD5="not-base64!")
    assert _code(e.value) == "InvalidDigest"
    bad_crc = server.aws("s3")
    _tamper(bad_crc, "before-sign.s3.PutObject", "x-amz-checksum-crc32", base64.b64encode(b"\0\0\0\0").decode())
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad_crc.put_object(Bucket=bkt, Key="crc", Body=b"payload")
    assert _code(e.value) == "BadDigest" and "CRC32" in e.value.response["Error"]["Message"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bkt)


def test_delete_and_delete_objects(s3):
    bkt = _bucket(s3, "delete-bkt")
    seen = Captured(s3)
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bkt, Key=k, Body=k.encode())
    s3.delete_object(Bucket=bkt, Key="a")
    s3.delete_object(Bucket=bkt, Key="never-there")  # 204 as on S3
    result = s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": "b"}, {"Key": "zzz"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["b", "zzz"]
    assert_s3_output("DeleteObjects", seen.bodies["DeleteObjects"])
    quiet = s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert "Contents" not in s3.list_objects_v2(Bucket=bkt)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
    assert _code(e.value) == "MalformedXML"


def test_listing_v2_v1_pages_prefixes_and_url_encoding(s3):
    bkt = _bucket(s3, "list-bkt")
    seen = Captured(s3)
    keys = [f"logs/{d}/{i}.txt" for d in ("2024", "2025") for i in range(3)] + ["a b+c", "top.txt", "é"]
    for k in keys:
        s3.put_object(Bucket=bkt, Key=k, Body=b"x")
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bkt, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 5
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys, key=lambda k: k.encode())
    assert_s3_output("ListObjectsV2", seen.bodies["ListObjectsV2"])
    top = s3.list_objects_v2(Bucket=bkt, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["logs/"]
    assert [o["Key"] for o in top["Contents"]] == ["a b+c", "top.txt", "é"]
    paged = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bkt, Prefix="logs/", Delimiter="/", PaginationConfig={"PageSize": 1}))
    assert [p["Prefix"] for page in paged for p in page.get("CommonPrefixes", [])] == ["logs/2024/", "logs/2025/"]
    after = s3.list_objects_v2(Bucket=bkt, StartAfter="logs/2025/1.txt")
    assert [o["Key"] for o in after["Contents"]] == ["logs/2025/2.txt", "top.txt", "é"]
    v1 = list(s3.get_paginator("list_objects").paginate(Bucket=bkt, PaginationConfig={"PageSize": 4}))
    assert [o["Key"] for p in v1 for o in p.get("Contents", [])] == sorted(keys, key=lambda k: k.encode())
    assert_s3_output("ListObjects", seen.bodies["ListObjects"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_objects_v2(Bucket=bkt, ContinuationToken="garbage!")
    assert _code(e.value) == "InvalidArgument"


def test_copy_object(s3):
    bkt = _bucket(s3, "copy-bkt")
    seen = Captured(s3)
    s3.put_object(Bucket=bkt, Key="src key", Body=b"data", ContentType="text/plain", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "src key"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"data").hexdigest()}"'
    assert_s3_output("CopyObject", seen.bodies["CopyObject"])
    dst = s3.get_object(Bucket=bkt, Key="dst")
    assert dst["Body"].read() == b"data" and dst["Metadata"] == {"a": "1"} and dst["ContentType"] == "text/plain"
    s3.copy_object(Bucket=bkt, Key="dst", CopySource=f"{bkt}/src key", MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="x/y")
    replaced = s3.head_object(Bucket=bkt, Key="dst")
    assert replaced["Metadata"] == {"b": "2"} and replaced["ContentType"] == "x/y"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bkt, Key="src key", CopySource={"Bucket": bkt, "Key": "src key"})
    assert _code(e.value) == "InvalidRequest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bkt, Key="x", CopySource={"Bucket": bkt, "Key": "nope"})
    assert _code(e.value) == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bkt, Key="x", CopySource={"Bucket": bkt, "Key": "src key"}, CopySourceIfMatch='"nope"')
    assert _code(e.value) == "PreconditionFailed"


def test_multipart_upload_and_its_bad_inputs(server):
    s3 = server.aws("s3")
    bkt = _bucket(s3, "multipart-bkt")
    seen = Captured(s3)
    data = os.urandom(11 * MiB + 123)
    from boto3.s3.transfer import TransferConfig

    s3.upload_fileobj(io.BytesIO(data), bkt, "big.bin", Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    head = s3.head_object(Bucket=bkt, Key="big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')
    assert_s3_output("CompleteMultipartUpload", seen.bodies["CompleteMultipartUpload"])
    out = io.BytesIO()
    s3.download_fileobj(bkt, "big.bin", out, Config=TransferConfig(multipart_threshold=4 * MiB, multipart_chunksize=4 * MiB))
    assert out.getvalue() == data
    part2 = s3.get_object(Bucket=bkt, Key="big.bin", PartNumber=2)
    assert part2["Body"].read() == data[5 * MiB : 10 * MiB] and part2["PartsCount"] == 3

    upload = s3.create_multipart_upload(Bucket=bkt, Key="cut.bin", ContentType="application/x-test")["UploadId"]
    assert_s3_output("CreateMultipartUpload", seen.bodies["CreateMultipartUpload"])
    p1 = s3.upload_part(Bucket=bkt, Key="cut.bin", UploadId=upload, PartNumber=1, Body=data[: 5 * MiB])["ETag"]
    p2 = s3.upload_part(Bucket=bkt, Key="cut.bin", UploadId=upload, PartNumber=2, Body=b"tail")["ETag"]
    listed = s3.list_parts(Bucket=bkt, Key="cut.bin", UploadId=upload)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, 5 * MiB), (2, 4)]
    assert_s3_output("ListParts", seen.bodies["ListParts"])
    # A truncated upload: completing with a part that never arrived.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bkt,
            Key="cut.bin",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 3, "ETag": p2}]},
        )
    assert _code(e.value) == "InvalidPart"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bkt,
            Key="cut.bin",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": p2}, {"PartNumber": 1, "ETag": p1}]},
        )
    assert _code(e.value) == "InvalidPartOrder"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bkt, Key="cut.bin")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The refusals lost nothing: the upload still completes.
    done = s3.complete_multipart_upload(
        Bucket=bkt,
        Key="cut.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]},
    )
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bkt, Key="cut.bin")
    assert got["Body"].read() == data[: 5 * MiB] + b"tail" and got["ContentType"] == "application/x-test"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=bkt, Key="cut.bin", UploadId=upload, PartNumber=3, Body=b"late")
    assert _code(e.value) == "NoSuchUpload"
    aborted = s3.create_multipart_upload(Bucket=bkt, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bkt, Key="gone", UploadId=aborted, PartNumber=1, Body=b"x")
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bkt).get("Uploads", [])] == [aborted]
    s3.abort_multipart_upload(Bucket=bkt, Key="gone", UploadId=aborted)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket=bkt, Key="gone", UploadId=aborted)
    assert _code(e.value) == "NoSuchUpload"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=bkt, Key="x", UploadId="whatever", PartNumber=10001, Body=b"x")
    assert _code(e.value) == "InvalidArgument"


def test_upload_part_copy(s3):
    bkt = _bucket(s3, "part-copy-bkt")
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket=bkt, Key="src", Body=data)
    upload = s3.create_multipart_upload(Bucket=bkt, Key="dst")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket=bkt,
        Key="dst",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bkt, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]["ETag"]
    p2 = s3.upload_part_copy(
        Bucket=bkt,
        Key="dst",
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": bkt, "Key": "src"},
        CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bkt, Key="dst", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]}
    )
    assert s3.get_object(Bucket=bkt, Key="dst")["Body"].read() == data


# -- signing variants -------------------------------------------------------------


def test_unsigned_payload(server):
    s3 = server.aws("s3", s3={"payload_signing_enabled": False})
    bkt = _bucket(s3, "unsigned-bkt")
    sent = []
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request.headers["X-Amz-Content-SHA256"]))
    s3.put_object(Bucket=bkt, Key="k", Body=b"not hashed")
    assert sent == [b"UNSIGNED-PAYLOAD"]
    assert s3.get_object(Bucket=bkt, Key="k")["Body"].read() == b"not hashed"


class _S3Signer(botocore.auth.S3SigV4Auth):
    """botocore's S3 signer with the payload hash the test chooses."""

    def payload(self, request):
        return request.context.get("payload_hash") or super().payload(request)


def _signed_request(
    server,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes = b"",
    *,
    payload_hash: str | None = None,
    region: str = "us-east-1",
    secret: str | None = None,
):
    key, real_secret = server.credentials()
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
    # Sent as signed: requests would otherwise put the address it connects to.
    request.headers["Host"] = urllib.parse.urlsplit(url).netloc
    if payload_hash:
        request.context["payload_hash"] = payload_hash
    _S3Signer(botocore.credentials.Credentials(key, secret or real_secret), "s3", region).add_auth(request)
    return request


def _aws_chunked(server, url: str, payload: bytes, chunk: int, tamper: bool = False) -> requests.Response:
    """An upload as SDKs that sign every chunk send it (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] + [b""]
    encoded_len = sum(len(f"{len(p):x};chunk-signature=".encode()) + 64 + 4 + len(p) for p in pieces)
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload)), "Content-Length": str(encoded_len)}
    request = _signed_request(server, "PUT", url, headers, payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    amz_date = request.headers["X-Amz-Date"]
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    _, secret = server.credentials()
    k = f"AWS4{secret}".encode()
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    body, previous = b"", seed
    for p in pieces:
        sts = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, hashlib.sha256(b"").hexdigest(), hashlib.sha256(p).hexdigest()]
        )
        previous = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        sent = p.replace(b"a", b"b", 1) if tamper and p else p
        body += f"{len(p):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    assert len(body) == encoded_len
    return requests.put(url, data=body, headers=dict(request.headers), timeout=30)


def test_aws_chunked_signed_upload(server, s3):
    bkt = _bucket(s3, "chunked-bkt")
    payload = b"a" * 20000 + os.urandom(50000)
    r = _aws_chunked(server, f"{server.url}/{bkt}/streamed", payload, 8192)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bkt, Key="streamed")["Body"].read() == payload
    bad = _aws_chunked(server, f"{server.url}/{bkt}/tampered", payload, 8192, tamper=True)
    assert bad.status_code == 403
    assert_s3_error(bad.content, "SignatureDoesNotMatch")
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bkt, Key="tampered")


def test_virtual_hosted_style(server, s3):
    bkt = _bucket(s3, "vhost-bkt")
    host = f"{bkt}.localhost:{server.port}"
    put = _signed_request(server, "PUT", f"http://{host}/dir/v.txt", {"Content-Type": "text/plain"}, b"virtual")
    r = requests.put(f"{server.url}/dir/v.txt", data=b"virtual", headers=dict(put.headers), timeout=10)
    assert r.status_code == 200, r.text
    get = _signed_request(server, "GET", f"http://{host}/dir/v.txt", {})
    r = requests.get(f"{server.url}/dir/v.txt", headers=dict(get.headers), timeout=10)
    assert r.content == b"virtual" and r.headers["Content-Type"] == "text/plain"
    listing = _signed_request(server, "GET", f"http://{host}/?list-type=2", {})
    r = requests.get(f"{server.url}/?list-type=2", headers=dict(listing.headers), timeout=10)
    assert b"<Key>dir/v.txt</Key>" in r.content
    assert_s3_output("ListObjectsV2", r.content)


@pytest.mark.parametrize("version", [None, "s3v4"])
def test_presigned_urls(server, version):
    # None: botocore's default for us-east-1, the legacy version 2 signature.
    s3 = server.aws("s3", signature_version=version) if version else server.aws("s3")
    bkt = _bucket(s3, f"presign-{version or 'default'}-bkt")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bkt, "Key": "p q"}, ExpiresIn=60)
    assert ("X-Amz-Signature=" in put_url) == (version == "s3v4")
    r = requests.put(put_url, data=b"presigned", timeout=10)
    assert r.status_code == 200, r.text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bkt, "Key": "p q", "ResponseContentType": "x/z"}, ExpiresIn=60)
    r = requests.get(get_url, timeout=10)
    assert r.content == b"presigned" and r.headers["Content-Type"] == "x/z"
    forged = get_url.replace("x%2Fz", "text%2Fhtml")
    r = requests.get(forged, timeout=10)
    assert r.status_code == 403
    assert_s3_error(r.content, "SignatureDoesNotMatch")


def test_auth_refusals_in_s3_words(server):
    s3 = server.aws("s3")
    bkt = _bucket(s3, "auth-bkt")
    url = f"{server.url}/{bkt}/k"
    wrong = _signed_request(server, "GET", url, {}, secret="x" * 40)
    r = requests.get(url, headers=dict(wrong.headers), timeout=10)
    assert r.status_code == 403
    assert_s3_error(r.content, "SignatureDoesNotMatch")
    unknown = boto_client_with(server, "LLAKNOTAREALKEY00000", "y" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        unknown.list_buckets()
    assert _code(e.value) == "InvalidAccessKeyId"
    body_swap = _signed_request(server, "PUT", url, {}, b"signed body")
    r = requests.put(url, data=b"other body!", headers=dict(body_swap.headers), timeout=10)
    assert r.status_code == 400
    assert_s3_error(r.content, "XAmzContentSHA256Mismatch")
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bkt, Key="k")
    # Unsigned, to a bucket's virtual host: S3's AccessDenied.
    r = requests.get(f"{server.url}/k", headers={"Host": f"{bkt}.localhost:{server.port}"}, timeout=10)
    assert r.status_code == 403
    assert_s3_error(r.content, "AccessDenied")


def boto_client_with(server, key: str, secret: str):
    import boto3
    import botocore.config

    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def test_another_region_is_told_the_right_one_and_botocore_follows(server):
    other = server.aws("s3", region="eu-west-1")
    other.put_object(Bucket=_bucket(server.aws("s3"), "region-bkt"), Key="k", Body=b"redirected")
    assert other.get_object(Bucket="region-bkt", Key="k")["Body"].read() == b"redirected"
    wrong = _signed_request(server, "GET", f"{server.url}/region-bkt/k", {}, region="eu-west-1")
    r = requests.get(f"{server.url}/region-bkt/k", headers=dict(wrong.headers), timeout=10)
    root = assert_s3_error(r.content, "AuthorizationHeaderMalformed")
    assert root.findtext("Region") == "us-east-1"


def _put_5gb(server, bkt: str, key: str) -> bytes:
    """A single PUT that declares 5 GB, sends 64 KiB of it and waits for
    the answer; the rest never comes."""
    request = _signed_request(
        server, "PUT", f"{server.url}/{bkt}/{key}", {"Content-Length": str(5 * 1024**3)}, payload_hash="UNSIGNED-PAYLOAD"
    )
    head = f"PUT /{bkt}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.sendall(b"x" * 65536)
        answer = b""
        while b"</Error>" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_a_5gb_single_put_is_refused_before_its_body(server, s3):
    bkt = _bucket(s3, "huge-bkt")
    answer = _put_5gb(server, bkt, "huge")
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 400 " in status_line
    root = assert_s3_error(rest.split(b"\r\n\r\n", 1)[1], "EntityTooLarge")
    assert root.findtext("ProposedSize") == str(5 * 1024**3)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bkt, Key="huge")
    # Over an object that exists, the refusal leaves it as it was.
    s3.put_object(Bucket=bkt, Key="kept", Body=b"stored before")
    assert b"<Code>EntityTooLarge</Code>" in _put_5gb(server, bkt, "kept")
    assert s3.get_object(Bucket=bkt, Key="kept")["Body"].read() == b"stored before"


def test_quota_and_max_object_options(tmp_path):
    with ServerProcess(tmp_path / "d", "--s3-quota-mb", "1", "--s3-max-object-mb", "2") as srv:
        s3 = srv.aws("s3")
        bkt = _bucket(s3, "quota-bkt")
        s3.put_object(Bucket=bkt, Key="a", Body=b"x" * (700 * 1024))
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.put_object(Bucket=bkt, Key="b", Body=b"y" * (700 * 1024))
        assert _code(e.value) == "EntityTooLarge" and "quota" in e.value.response["Error"]["Message"]
        s3.delete_object(Bucket=bkt, Key="a")
        s3.put_object(Bucket=bkt, Key="b", Body=b"y" * (700 * 1024))
        assert srv.stop() == 0


def test_an_object_survives_kill_9_right_after_its_200(tmp_path):
    with ServerProcess(tmp_path / "d") as srv:
        s3 = srv.aws("s3")
        bkt = _bucket(s3, "durable-bkt")
        data = os.urandom(300_000)
        s3.put_object(Bucket=bkt, Key="k", Body=data)
        srv.stop(signal.SIGKILL)
    again = ServerProcess(tmp_path / "d").start()
    try:
        assert again.aws("s3").get_object(Bucket=bkt, Key="k")["Body"].read() == data
    finally:
        assert again.stop() == 0


def test_the_lambda_api_on_the_same_port_is_unaffected(server, s3):
    _bucket(s3, "functions")  # a bucket named like Lambda's path segment
    s3.put_object(Bucket="functions", Key="x", Body=b"s3")
    assert "Functions" in server.client().list_functions()
    assert s3.get_object(Bucket="functions", Key="x")["Body"].read() == b"s3"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_over_tls_botocore_sends_aws_chunked_with_a_trailer(tmp_path):
    from helpers import free_port

    key, crt = make_test_cert(tmp_path, san="DNS:localhost,IP:127.0.0.1")
    port = free_port()
    with ServerProcess(tmp_path / "d", "--tls-port", str(port), "--tls-cert", str(crt), "--tls-key", str(key)) as srv:
        import boto3
        import botocore.config

        access, secret = srv.credentials()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"https://127.0.0.1:{port}",
            region_name="us-east-1",
            verify=str(crt),
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )
        sent = []
        s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request.headers.get("X-Amz-Content-SHA256")))
        s3.create_bucket(Bucket="tls-bkt")
        data = os.urandom(100_000)
        s3.put_object(Bucket="tls-bkt", Key="k", Body=io.BytesIO(data))
        assert sent == [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
        got = s3.get_object(Bucket="tls-bkt", Key="k", ChecksumMode="ENABLED")
        assert got["Body"].read() == data and got["ChecksumCRC32"]
        assert srv.stop() == 0


@pytest.mark.cli
def test_aws_cli_cp_ls_rm_sync(server, tmp_path):
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    if aws is None:
        pytest.fail("the aws CLI (awscli, a test dependency) is not installed")
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

    def run(*args: str) -> str:
        done = subprocess.run(
            [aws, *args, "--no-progress"] if args[1] in ("cp", "sync") else [aws, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("s3", "mb", "s3://cli-bkt")
    src = tmp_path / "src"
    (src / "in").mkdir(parents=True)
    (src / "in" / "x.csv").write_text("a,b\n1,2\n")
    (src / "big.bin").write_bytes(os.urandom(9 * MiB))  # past the CLI's 8 MiB multipart threshold
    (src / "with space.txt").write_text("s")
    run("s3", "cp", str(src / "in" / "x.csv"), "s3://cli-bkt/in/x.csv")
    assert "in/x.csv" in run("s3", "ls", "s3://cli-bkt", "--recursive")
    out = run("s3", "sync", str(src), "s3://cli-bkt/tree")
    assert "big.bin" in out and "with space.txt" in out
    assert run("s3", "sync", str(src), "s3://cli-bkt/tree") == ""  # nothing changed, nothing sent
    dst = tmp_path / "dst"
    run("s3", "sync", "s3://cli-bkt/tree", str(dst))
    for f in ("in/x.csv", "big.bin", "with space.txt"):
        assert (dst / f).read_bytes() == (src / f).read_bytes()
    run("s3", "rm", "s3://cli-bkt", "--recursive")
    assert run("s3", "ls", "s3://cli-bkt", "--recursive") == ""
    run("s3", "rb", "s3://cli-bkt")


def test_a_key_that_is_not_utf8_is_invalid_uri(server, s3):
    bkt = _bucket(s3, "uri-bkt")
    request = _signed_request(server, "PUT", f"{server.url}/{bkt}/bad%FFkey", {}, b"x")
    r = requests.put(f"{server.url}/{bkt}/bad%FFkey", data=b"x", headers=dict(request.headers), timeout=10)
    assert r.status_code == 400
    assert_s3_error(r.content, "InvalidURI")
    assert "Contents" not in s3.list_objects_v2(Bucket=bkt)


def test_an_upload_part_cut_short_stores_no_part(server, s3):
    bkt = _bucket(s3, "cut-part-bkt")
    upload = s3.create_multipart_upload(Bucket=bkt, Key="k")["UploadId"]
    path = f"/{bkt}/k?partNumber=1&uploadId={urllib.parse.quote(upload, safe='')}"
    request = _signed_request(server, "PUT", f"{server.url}{path}", {"Content-Length": str(MiB)}, payload_hash="UNSIGNED-PAYLOAD")
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"x" * (MiB // 2))  # half the part, then the client goes away
    assert s3.list_parts(Bucket=bkt, Key="k", UploadId=upload).get("Parts", []) == []
    # The upload itself is intact: the part can be sent again.
    etag = s3.upload_part(Bucket=bkt, Key="k", UploadId=upload, PartNumber=1, Body=b"whole")["ETag"]
    s3.complete_multipart_upload(Bucket=bkt, Key="k", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bkt, Key="k")["Body"].read() == b"whole"
