"""S3's wire formats without a server: request XML parsed defensively,
response XML written safely, aws-chunked bodies checked chunk by chunk
(against the example AWS publishes for chunked SigV4 uploads)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from lambdalet.gateway.api import sigv4
from lambdalet.gateway.events.s3 import chunked, notifications, xmlsafe
from lambdalet.gateway.events.s3.errors import S3Error

# --- XML in ----------------------------------------------------------------------

HOSTILE = [
    # billion laughs: entities are never declared, let alone expanded
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><Delete><Object><Key>&lol2;</Key></Object></Delete>',
    # external entity (XXE)
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>',
    # external DTD
    b'<?xml version="1.0"?><!DOCTYPE d SYSTEM "http://127.0.0.1:1/evil.dtd"><Delete/>',
    # a processing instruction
    b'<?xml version="1.0"?><?xml-stylesheet href="x"?><Delete/>',
    # nesting past the depth limit
    b"<a>" * 100 + b"</a>" * 100,
    # an undeclared entity
    b"<Delete><Object><Key>&nope;</Key></Object></Delete>",
    # not XML, truncated, two roots
    b"not xml",
    b"<Delete><Object>",
    b"<a/><b/>",
    b"",
]


@pytest.mark.parametrize("doc", HOSTILE)
def test_hostile_or_broken_xml_is_malformed_xml(doc):
    with pytest.raises(S3Error) as e:
        xmlsafe.parse(doc)
    assert e.value.code == "MalformedXML" and e.value.status == 400


def test_too_many_elements_is_malformed_xml():
    doc = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 20000 + b"</Delete>"
    with pytest.raises(S3Error):
        xmlsafe.parse(doc)


def test_namespaces_are_dropped_and_text_kept():
    root = xmlsafe.parse(
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>'
        b"<Object><Key>a &amp; b &#x1F600;</Key></Object></Delete>"
    )
    assert root.tag == "Delete" and xmlsafe.parse_bool(root.find("Quiet"))
    assert root.find("Object").child_text("Key") == "a & b \U0001f600"


# --- XML out ---------------------------------------------------------------------


def test_written_xml_escapes_everything_and_parses_back():
    hostile_key = "a<b>&\"'\r\x01\x1f\ud800z"
    doc = xmlsafe.document("ListBucketResult", [("Contents", {"Key": hostile_key, "Size": 3}), ("IsTruncated", False)])
    assert b"<b>" not in doc and b"\x01" not in doc
    # Numeric references for what XML 1.0 cannot carry, as S3 writes them;
    # a strict parser reads back everything XML can hold.
    assert b"&#x1;" in doc and b"&#xD800;" in doc
    safe = xmlsafe.document("X", [("Key", "a<b>&\"'\rz")])
    assert ET.fromstring(safe).find("{http://s3.amazonaws.com/doc/2006-03-01/}Key").text == "a<b>&\"'\rz"


# --- aws-chunked -------------------------------------------------------------------
# AWS's published example of a chunked upload (Signature Version 4, "Transferring
# payload in multiple chunks"): 66560 bytes of 'a' in chunks of 64 KiB and 1 KiB.

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {"AKIAIOSFODNN7EXAMPLE": SECRET}
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
HEADERS = [
    ("host", "s3.amazonaws.com"),
    ("x-amz-date", "20130524T000000Z"),
    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    (
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
        f"Signature={SEED}",
    ),
    ("x-amz-content-sha256", chunked.SIGNED),
    ("content-encoding", "aws-chunked"),
    ("x-amz-decoded-content-length", "66560"),
    ("content-length", "66824"),
]
NOW = dt.datetime(2013, 5, 24, 0, 1, tzinfo=dt.timezone.utc)


def _example_body(signatures=CHUNK_SIGNATURES, second=b"a" * 1024) -> bytes:
    return (
        f"10000;chunk-signature={signatures[0]}\r\n".encode()
        + b"a" * 65536
        + b"\r\n"
        + f"{len(second):x};chunk-signature={signatures[1]}\r\n".encode()
        + second
        + b"\r\n"
        + f"0;chunk-signature={signatures[2]}\r\n\r\n".encode()
    )


def _signer():
    claim = sigv4.check_head("PUT", "/examplebucket/chunkObject.txt", HEADERS, KEYS, NOW, service="s3", allow_streaming_payload=True)
    assert claim.verify_body(b"", payload_checked_elsewhere=True) == "AKIAIOSFODNN7EXAMPLE"
    return chunked.ChunkSigner(claim.signing_key(), claim.timestamp, claim.scope, claim.signature)


def test_aws_example_seed_and_chunk_signatures():
    signer = _signer()
    assert signer.chunk(SEED, b"a" * 65536) == CHUNK_SIGNATURES[0]
    body = _example_body()
    assert len(body) == 66824  # the example's Content-Length
    data, trailers = chunked.decode(body, chunked.SIGNED, signer, 66560)
    assert data == b"a" * 66560 and trailers == {}


def test_a_changed_chunk_is_signature_does_not_match():
    with pytest.raises(S3Error) as e:
        chunked.decode(_example_body(second=b"b" * 1024), chunked.SIGNED, _signer(), 66560)
    assert e.value.code == "SignatureDoesNotMatch"


def test_chunks_reordered_or_replayed_do_not_verify():
    swapped = [CHUNK_SIGNATURES[1], CHUNK_SIGNATURES[0], CHUNK_SIGNATURES[2]]
    with pytest.raises(S3Error) as e:
        chunked.decode(_example_body(swapped), chunked.SIGNED, _signer(), 66560)
    assert e.value.code == "SignatureDoesNotMatch"


def test_the_seed_signature_covers_the_streaming_mode():
    tampered = [(k, "UNSIGNED-PAYLOAD" if k == "x-amz-content-sha256" else v) for k, v in HEADERS]
    claim = sigv4.check_head(
        "PUT",
        "/examplebucket/chunkObject.txt",
        tampered,
        KEYS,
        NOW,
        service="s3",
        allow_unsigned_payload=True,
        allow_streaming_payload=True,
    )
    with pytest.raises(sigv4.AuthError):
        claim.verify_body(b"", allow_unsigned_payload=True)


def test_decoded_length_and_framing_are_checked():
    signer = _signer()
    with pytest.raises(S3Error) as e:
        chunked.decode(_example_body(), chunked.SIGNED, signer, 66561)
    assert e.value.code == "IncompleteBody"
    with pytest.raises(S3Error) as e:
        chunked.decode(_example_body()[:-40], chunked.SIGNED, signer, 66560)
    assert e.value.code in ("IncompleteBody", "InvalidRequest")
    with pytest.raises(S3Error) as e:
        chunked.decode(b"zz;chunk-signature=x\r\n", chunked.SIGNED, signer, None)
    assert e.value.code == "InvalidRequest"


def test_unsigned_trailer_body_as_botocore_sends_it():
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
    data, trailers = chunked.decode(body, chunked.UNSIGNED_TRAILER, None, 11)
    assert data == b"hello world" and trailers == {"x-amz-checksum-crc32": "DUoRhQ=="}


def test_signed_trailer_needs_its_signature():
    signer = _signer()
    first = signer.chunk(SEED, b"abc")
    last = signer.chunk(first, b"")
    trailer = b"x-amz-checksum-crc32:NSRBwg==\n"
    good = signer.trailer(last, trailer)
    body = (
        f"3;chunk-signature={first}\r\nabc\r\n0;chunk-signature={last}\r\n".encode()
        + b"x-amz-checksum-crc32:NSRBwg==\r\n"
        + f"x-amz-trailer-signature:{good}\r\n\r\n".encode()
    )
    data, trailers = chunked.decode(body, chunked.SIGNED_TRAILER, signer, 3)
    assert data == b"abc" and trailers == {"x-amz-checksum-crc32": "NSRBwg=="}
    with pytest.raises(S3Error) as e:
        chunked.decode(body.replace(b"NSRBwg==", b"AAAAAA=="), chunked.SIGNED_TRAILER, signer, 3)
    assert e.value.code == "SignatureDoesNotMatch"


# --- notification configurations, as S3 validates them ------------------------------


def _config(*rules: str) -> bytes:
    return ("<NotificationConfiguration>" + "".join(rules) + "</NotificationConfiguration>").encode()


def _rule(events=("s3:ObjectCreated:*",), prefix=None, suffix=None, arn="arn:aws:lambda:us-east-1:000000000000:function:f") -> str:
    filters = ""
    if prefix is not None or suffix is not None:
        filters = "<Filter><S3Key>"
        if prefix is not None:
            filters += f"<FilterRule><Name>prefix</Name><Value>{prefix}</Value></FilterRule>"
        if suffix is not None:
            filters += f"<FilterRule><Name>suffix</Name><Value>{suffix}</Value></FilterRule>"
        filters += "</S3Key></Filter>"
    return (
        f"<CloudFunctionConfiguration><CloudFunction>{arn}</CloudFunction>"
        + "".join(f"<Event>{e}</Event>" for e in events)
        + filters
        + "</CloudFunctionConfiguration>"
    )


@pytest.mark.parametrize(
    "a,b",
    [
        (_rule(), _rule()),
        (_rule(("s3:ObjectCreated:*",)), _rule(("s3:ObjectCreated:Put",))),
        (_rule(prefix="in/"), _rule(prefix="in/csv/")),
        (_rule(suffix=".csv"), _rule(suffix="x.csv")),
        (_rule(prefix="in/", suffix=".csv"), _rule(suffix=".csv")),
    ],
)
def test_overlapping_filters_are_refused_as_s3_refuses_them(a, b):
    with pytest.raises(S3Error) as e:
        notifications.parse_config(xmlsafe.parse(_config(a, b)))
    assert e.value.code == "InvalidArgument"
    assert "overlap" in e.value.message or "ambiguously defined" in e.value.message


@pytest.mark.parametrize(
    "a,b",
    [
        (_rule(("s3:ObjectCreated:*",)), _rule(("s3:ObjectRemoved:*",))),
        (_rule(prefix="in/"), _rule(prefix="out/")),
        (_rule(suffix=".csv"), _rule(suffix=".json")),
        (_rule(prefix="in/", suffix=".csv"), _rule(prefix="out/", suffix=".csv")),
    ],
)
def test_disjoint_filters_are_accepted(a, b):
    config, _ = notifications.parse_config(xmlsafe.parse(_config(a, b)))
    assert len(config.functions) == 2


@pytest.mark.parametrize(
    "rule,code",
    [
        (_rule(("s3:ObjectCreated:Bogus",)), "InvalidArgument"),
        (_rule(prefix="a").replace("<Name>prefix</Name>", "<Name>middle</Name>"), "InvalidArgument"),
        (_rule(prefix="a").replace("</S3Key>", "<FilterRule><Name>prefix</Name><Value>b</Value></FilterRule></S3Key>"), "InvalidArgument"),
        ("<CloudFunctionConfiguration><Event>s3:ObjectCreated:*</Event></CloudFunctionConfiguration>", "MalformedXML"),
        ("<Unknown/>", "MalformedXML"),
        ("<EventBridgeConfiguration/>", "NotImplemented"),
    ],
)
def test_bad_configurations(rule, code):
    with pytest.raises(S3Error) as e:
        notifications.parse_config(xmlsafe.parse(_config(rule)))
    assert e.value.code == code


def test_destinations_s3_cannot_invoke_are_named_together():
    config, others = notifications.parse_config(
        xmlsafe.parse(
            _config(
                _rule(prefix="a/"),
                _rule(prefix="b/", arn="arn:aws:lambda:us-east-1:000000000000:function:g"),
                "<QueueConfiguration><Queue>arn:aws:sqs:us-east-1:000000000000:q</Queue><Event>s3:ObjectCreated:*</Event></QueueConfiguration>",
            )
        )
    )
    with pytest.raises(S3Error) as e:
        notifications.check_destinations(
            config, others, lambda f: None if f.function == "f" else f"Not authorized to invoke function [{f.arn}]"
        )
    assert e.value.message == "Unable to validate the following destination configurations"
    assert e.value.extra["ArgumentName1"] == "arn:aws:sqs:us-east-1:000000000000:q"
    assert e.value.extra["ArgumentValue2"] == "Not authorized to invoke function [arn:aws:lambda:us-east-1:000000000000:function:g]"


def test_the_event_record_is_aws_s3_record():
    ctx = notifications.RequestContext("REQID", "HOSTID", "AWS:AKID", "10.0.0.1", "OWNER")
    rec = notifications.record(
        event_name="ObjectCreated:Put",
        bucket="bkt",
        key="in/red flower+1.csv",
        size=12,
        etag="abc",
        sequencer=0x55,
        config_id="cfg",
        ctx=ctx,
        region="us-east-1",
        wall_s=0.5,
    )
    assert rec == {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "1970-01-01T00:00:00.500Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AKID"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {"x-amz-request-id": "REQID", "x-amz-id-2": "HOSTID"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "cfg",
            "bucket": {"name": "bkt", "ownerIdentity": {"principalId": "OWNER"}, "arn": "arn:aws:s3:::bkt"},
            "object": {"key": "in/red+flower%2B1.csv", "size": 12, "eTag": "abc", "sequencer": "0000000000000055"},
        },
    }
    removed = notifications.record(
        event_name="ObjectRemoved:Delete",
        bucket="bkt",
        key="k",
        size=None,
        etag=None,
        sequencer=1,
        config_id="cfg",
        ctx=ctx,
        region="us-east-1",
        wall_s=0,
    )
    assert removed["s3"]["object"] == {"key": "k", "sequencer": "0000000000000001"}


def test_filters_match_the_key_as_the_record_encodes_it():
    config, _ = notifications.parse_config(xmlsafe.parse(_config(_rule(prefix="my+dir/", suffix=".csv"))))
    ctx = notifications.RequestContext("R", "H", "P", "ip", "O")
    hits = notifications.events_for(config, "ObjectCreated:Put", "b", "my dir/x.csv", 1, "e", 1, ctx, "us-east-1", 0)
    misses = notifications.events_for(config, "ObjectCreated:Put", "b", "my+dir/x.csv", 1, "e", 1, ctx, "us-east-1", 0)
    removed = notifications.events_for(config, "ObjectRemoved:Delete", "b", "my dir/x.csv", None, None, 1, ctx, "us-east-1", 0)
    assert len(hits) == 1 and misses == [] and removed == []


def test_a_version_2_signature_with_a_signed_aws_chunked_body_is_refused():
    # aws-chunked's per-chunk signatures chain from a version 4 signature; a
    # version 2 one has none to chain from.
    from lambdalet.gateway.api.s3 import auth
    from lambdalet.gateway.api.s3.sigv2 import V2Claim
    from lambdalet.gateway.events.s3.errors import S3Error
    from lambdalet.gateway.http.http1 import Head

    head = Head(
        "PUT",
        "/bucket/key",
        [
            ("host", "localhost"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "1"),
        ],
        0,
        False,
        True,
        False,
    )
    body = b"1;chunk-signature=" + b"0" * 64 + b"\r\nx\r\n0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n"
    with pytest.raises(S3Error) as e:
        auth.payload(head, V2Claim("AKID", False), body)
    assert e.value.code == "InvalidRequest"
