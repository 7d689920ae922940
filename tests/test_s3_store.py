"""The object store's core on real SQLite and real files: blobs named by
their bytes and counted, listings in S3's order and pages, multipart rules,
the quota, and what start-up removes after a crash."""

from __future__ import annotations

import hashlib
import pathlib

import pytest

from lambdalet.gateway.events.s3 import notifications, xmlsafe
from lambdalet.gateway.events.s3.errors import S3Error
from lambdalet.gateway.events.s3.multipart import MIN_PART_BYTES
from lambdalet.gateway.events.s3.names import bucket_name_problem, check_key
from lambdalet.gateway.events.s3.records import ObjectMeta
from lambdalet.gateway.events.s3.store import ObjectStore

CTX = notifications.RequestContext("REQ", "HOST", "AWS:KEY", "127.0.0.1", "000000000000")
MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path):
    s = ObjectStore(tmp_path / "s3", max_object_bytes=64 * MiB)
    s.create_bucket("bkt")
    yield s
    s.close()


def put(store: ObjectStore, key: str, data: bytes, bucket: str = "bkt"):
    return store.put_object(bucket, key, store.stage(data), "text/plain", ObjectMeta(), CTX)[0]


def blob_files(store: ObjectStore) -> set[str]:
    return set(store.blobs.stored())


def test_objects_are_blobs_named_by_their_bytes_and_shared(store):
    a = put(store, "a", b"same bytes")
    b = put(store, "b", b"same bytes")
    assert a.parts == b.parts and len(blob_files(store)) == 1
    assert a.etag == hashlib.md5(b"same bytes").hexdigest()
    store.delete_objects("bkt", ["a"], CTX)
    assert len(blob_files(store)) == 1  # still named by b
    assert store.blobs.read(b.parts[0][0]) == b"same bytes"
    store.delete_objects("bkt", ["b"], CTX)
    assert blob_files(store) == set()
    assert store.usage()["stored_bytes"] == 0


def test_overwrite_releases_the_old_blob_but_not_when_it_is_the_same(store):
    put(store, "k", b"one")
    first = blob_files(store)
    put(store, "k", b"one")  # the same bytes again: the blob must survive
    assert blob_files(store) == first
    put(store, "k", b"two")
    assert len(blob_files(store)) == 1 and blob_files(store) != first
    assert store.blobs.read(store.head("bkt", "k").parts[0][0]) == b"two"


def test_copy_names_the_same_blobs(store):
    src = put(store, "src", b"payload")
    copied, _ = store.copy_object("bkt", "src", "bkt", "dst", content_type=None, meta=None, ctx=CTX)
    assert copied.parts == src.parts and copied.etag == src.etag and copied.content_type == "text/plain"
    store.delete_objects("bkt", ["src"], CTX)
    assert store.blobs.read(store.head("bkt", "dst").parts[0][0]) == b"payload"


def test_listing_is_in_utf8_byte_order_and_pages_without_repeats(store):
    keys = ["a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d", "é", "z", "\u4e2d/x"]
    for k in keys:
        put(store, k, k.encode())
    flat = store.list_objects("bkt")
    assert [o.key for o in flat.objects] == sorted(keys, key=lambda k: k.encode())
    # With a delimiter, page by page: every key or prefix exactly once.
    seen, after = [], ""
    while True:
        page = store.list_objects("bkt", delimiter="/", after=after, max_keys=2)
        seen += [o.key for o in page.objects] + page.prefixes
        if not page.truncated:
            break
        after = page.next_marker
    assert sorted(seen, key=lambda k: k.encode()) == ["a/", "b", "c/", "d", "z", "é", "\u4e2d/"]
    assert len(seen) == len(set(seen))
    under_a = store.list_objects("bkt", prefix="a/", delimiter="/")
    assert [o.key for o in under_a.objects] == ["a/1", "a/2"] and under_a.prefixes == ["a/b/"]


def test_listing_thousands_of_keys_under_a_prefix_rolls_up_in_one_step(store):
    for i in range(600):
        put(store, f"logs/{i:04d}", b"x")
    put(store, "zzz", b"y")
    page = store.list_objects("bkt", delimiter="/")
    assert page.prefixes == ["logs/"] and [o.key for o in page.objects] == ["zzz"]


def test_multipart_rules_and_a_truncated_upload_loses_nothing(store):
    upload = store.create_upload("bkt", "big", "application/octet-stream", ObjectMeta())
    p1 = store.put_part("bkt", "big", upload, 1, store.stage(b"a" * MIN_PART_BYTES), {})
    p2 = store.put_part("bkt", "big", upload, 2, store.stage(b"b" * 10), {})
    # A part that was never uploaded (the upload was cut short).
    with pytest.raises(S3Error) as e:
        store.complete_upload("bkt", "big", upload, [(1, p1.etag), (3, "0" * 32)], CTX)
    assert e.value.code == "InvalidPart"
    with pytest.raises(S3Error) as e:
        store.complete_upload("bkt", "big", upload, [(2, p2.etag), (1, p1.etag)], CTX)
    assert e.value.code == "InvalidPartOrder"
    with pytest.raises(S3Error) as e:
        store.complete_upload("bkt", "big", upload, [(1, p1.etag), (2, "f" * 32)], CTX)
    assert e.value.code == "InvalidPart"
    # Nothing stored was lost by the refusals: the upload completes after them.
    info, _ = store.complete_upload("bkt", "big", upload, [(1, p1.etag), (2, p2.etag)], CTX)
    assert info.size == MIN_PART_BYTES + 10 and info.etag.endswith("-2")
    with pytest.raises(S3Error) as e:
        store.upload("bkt", "big", upload)
    assert e.value.code == "NoSuchUpload"


def test_small_parts_before_the_last_are_refused(store):
    upload = store.create_upload("bkt", "k", "x/y", ObjectMeta())
    p1 = store.put_part("bkt", "k", upload, 1, store.stage(b"tiny"), {})
    p2 = store.put_part("bkt", "k", upload, 2, store.stage(b"tail"), {})
    with pytest.raises(S3Error) as e:
        store.complete_upload("bkt", "k", upload, [(1, p1.etag), (2, p2.etag)], CTX)
    assert e.value.code == "EntityTooSmall"


def test_abort_removes_the_parts_blobs(store):
    upload = store.create_upload("bkt", "k", "x/y", ObjectMeta())
    store.put_part("bkt", "k", upload, 1, store.stage(b"part bytes"), {})
    assert blob_files(store)
    store.abort_upload("bkt", "k", upload)
    assert blob_files(store) == set()


def test_quota_refuses_with_entity_too_large_and_frees_on_delete(tmp_path):
    store = ObjectStore(tmp_path / "s3", max_object_bytes=MiB, quota_bytes=1000)
    try:
        store.create_bucket("bkt")
        put(store, "a", b"x" * 600)
        with pytest.raises(S3Error) as e:
            store.stage(b"y" * 600)
        assert e.value.code == "EntityTooLarge" and "quota" in e.value.message
        with pytest.raises(S3Error) as e:
            store.stage(b"z" * (MiB + 1))
        assert e.value.code == "EntityTooLarge" and e.value.extra["MaxSizeAllowed"] == str(MiB)
        store.delete_objects("bkt", ["a"], CTX)
        put(store, "b", b"y" * 600)
    finally:
        store.close()


def test_recover_removes_blobs_no_commit_named(tmp_path):
    store = ObjectStore(tmp_path / "s3", max_object_bytes=MiB)
    store.create_bucket("bkt")
    put(store, "kept", b"kept")
    store.stage(b"staged, then the server died")  # never committed
    (store.blobs.root / "ab").mkdir(exist_ok=True)
    (store.blobs.root / "ab" / ".tmp-deadbeef").write_bytes(b"half a write")
    store.close()
    again = ObjectStore(tmp_path / "s3", max_object_bytes=MiB)
    try:
        assert again.recover() == 2
        assert len(blob_files(again)) == 1
        assert again.blobs.read(again.head("bkt", "kept").parts[0][0]) == b"kept"
    finally:
        again.close()


def test_buckets_delete_only_when_empty(store):
    put(store, "k", b"v")
    with pytest.raises(S3Error) as e:
        store.delete_bucket("bkt")
    assert e.value.code == "BucketNotEmpty"
    store.delete_objects("bkt", ["k"], CTX)
    store.delete_bucket("bkt")
    with pytest.raises(S3Error) as e:
        store.head("bkt", "k")
    assert e.value.code == "NoSuchBucket"


def test_events_are_committed_with_the_object_only_when_configured(store):
    put(store, "before", b"1")
    assert store.outbox() == []
    root = xmlsafe.parse(
        b"<NotificationConfiguration><CloudFunctionConfiguration><Id>c1</Id>"
        b"<CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:f</CloudFunction>"
        b"<Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>in/</Value>"
        b"</FilterRule></S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>"
    )
    config, others = notifications.parse_config(root)
    assert others == []
    store.put_notification("bkt", config)
    put(store, "out/x", b"2")
    assert store.outbox() == []
    put(store, "in/x", b"3")
    rows = store.outbox()
    assert len(rows) == 1 and rows[0].function == "f" and rows[0].source_arn == "arn:aws:s3:::bkt"
    store.forget_outbox([rows[0].id])
    assert store.outbox() == []


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Upper",
        "under_score",
        "-start",
        "end-",
        "two..dots",
        "192.168.5.4",
        "xn--bucket",
        "sthree-x",
        "bucket-s3alias",
        "bucket--ol-s3",
        "has space",
    ],
)
def test_bucket_names_outside_s3_rules(name):
    assert bucket_name_problem(name) is not None


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.name", "a" * 63, "1bucket"])
def test_bucket_names_inside_s3_rules(name):
    assert bucket_name_problem(name) is None


def test_keys_outside_s3_rules():
    with pytest.raises(S3Error) as e:
        check_key("k" * 1025)
    assert e.value.code == "KeyTooLongError"
    with pytest.raises(S3Error) as e:
        check_key("\ud800")
    assert e.value.code == "InvalidURI"
    assert check_key("é" * 512) == "é" * 512  # 1024 bytes of UTF-8


def test_files_are_private(store, tmp_path):
    put(store, "k", b"secret")
    sha = store.head("bkt", "k").parts[0][0]
    assert (store.blobs.path(sha).stat().st_mode & 0o777) == 0o600
    assert (pathlib.Path(store.root) / "blobs").stat().st_mode & 0o077 == 0
