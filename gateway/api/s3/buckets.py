"""Bucket operations: create, delete, head, list (buckets and objects, V1
and V2), location, versioning (never enabled) and the notification
configuration."""

from __future__ import annotations

import base64
import binascii

from ...events.s3 import notifications, xmlsafe
from ...events.s3.errors import S3Error
from ...events.s3.names import check_bucket_name
from .replies import XML, Reply, iso_time, url_encode, xml_reply

MAX_KEYS = 1000


def _owner(c) -> dict:
    return {"ID": c.owner_id}


async def list_buckets(c, r) -> Reply:
    prefix = r.query.get("prefix", "")
    found = [b for b in await c.run(c.store.list_buckets) if b.name.startswith(prefix)]
    limit = _int_param(r.query, "max-buckets", 10000, 1, 10000)
    token = r.query.get("continuation-token")
    if token is not None:
        after = _decode_token(token)
        found = [b for b in found if b.name > after]
    page, more = found[:limit], len(found) > limit
    items: list[tuple[str, object]] = [
        ("Owner", _owner(c)),
        ("Buckets", [("Bucket", {"Name": b.name, "CreationDate": iso_time(b.created_s), "BucketRegion": c.region}) for b in page]),
    ]
    if more:
        items.append(("ContinuationToken", _encode_token(page[-1].name)))
    if prefix:
        items.append(("Prefix", prefix))
    return xml_reply("ListAllMyBucketsResult", items)


async def create_bucket(c, r) -> Reply:
    name = check_bucket_name(r.bucket)
    if r.body.strip():
        root = xmlsafe.parse(r.body)
        if root.tag != "CreateBucketConfiguration":
            raise S3Error("MalformedXML")
        constraint = (root.child_text("LocationConstraint") or "").strip()
        if constraint and constraint != c.region:
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {constraint} location constraint is incompatible for the region specific endpoint this request was sent to.",
            )
    created = await c.run(c.store.create_bucket, name)
    if not created and c.region != "us-east-1":
        # us-east-1 answers 200 again, for legacy compatibility; every other
        # region refuses.
        raise S3Error("BucketAlreadyOwnedByYou", BucketName=name)
    return 200, [("Location", f"/{name}")], b""


async def delete_bucket(c, r) -> Reply:
    await c.run(c.store.delete_bucket, r.bucket)
    return 204, [], b""


async def head_bucket(c, r) -> Reply:
    if await c.run(c.store.bucket, r.bucket) is None:
        raise S3Error("NoSuchBucket", BucketName=r.bucket)
    return 200, [("x-amz-bucket-region", c.region), ("x-amz-access-point-alias", "false"), XML], b""


async def get_location(c, r) -> Reply:
    if await c.run(c.store.bucket, r.bucket) is None:
        raise S3Error("NoSuchBucket", BucketName=r.bucket)
    # us-east-1 is the empty constraint, as S3 reports it.
    text = "" if c.region == "us-east-1" else xmlsafe.escape(c.region)
    doc = f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{xmlsafe.S3_NS}">{text}</LocationConstraint>'
    return 200, [XML], doc.encode()


async def get_versioning(c, r) -> Reply:
    if await c.run(c.store.bucket, r.bucket) is None:
        raise S3Error("NoSuchBucket", BucketName=r.bucket)
    return xml_reply("VersioningConfiguration", [])


# -- listing --------------------------------------------------------------------


def _int_param(query: dict, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or int(raw) < 0:
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range", ArgumentName=name, ArgumentValue=raw)
    return max(low, min(high, int(raw)))


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(b"1:" + marker.encode("utf-8", "surrogatepass")).decode()


def _decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        if not raw.startswith(b"1:"):
            raise ValueError
        return raw[2:].decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise S3Error(
            "InvalidArgument", "The continuation token provided is incorrect", ArgumentName="continuation-token", ArgumentValue=token[:200]
        ) from None


def _encoding(query: dict):
    kind = query.get("encoding-type")
    if kind is None:
        return lambda s: s
    if kind != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request", ArgumentName="encoding-type", ArgumentValue=kind)
    return url_encode


def _contents(c, listing, enc, with_owner: bool) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for o in listing.objects:
        entry: dict[str, object] = {"Key": enc(o.key), "LastModified": iso_time(o.modified_s), "ETag": o.quoted_etag, "Size": o.size}
        if o.meta.checksums:
            entry["ChecksumAlgorithm"] = next(iter(o.meta.checksums))
            entry["ChecksumType"] = "FULL_OBJECT"
        entry["StorageClass"] = "STANDARD"
        if with_owner:
            entry["Owner"] = _owner(c)
        items.append(("Contents", entry))
    for p in listing.prefixes:
        items.append(("CommonPrefixes", {"Prefix": enc(p)}))
    return items


async def list_objects(c, r) -> Reply:
    q = r.query
    enc = _encoding(q)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    max_keys = _int_param(q, "max-keys", MAX_KEYS, 0, MAX_KEYS)
    if q.get("list-type") == "2":
        token = q.get("continuation-token")
        start_after = q.get("start-after", "")
        after = _decode_token(token) if token is not None else start_after
        listing = await c.run(lambda: c.store.list_objects(r.bucket, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys))
        items: list[tuple[str, object]] = [("Name", r.bucket), ("Prefix", enc(prefix))]
        if delimiter:
            items.append(("Delimiter", enc(delimiter)))
        items += [("MaxKeys", max_keys)]
        if "encoding-type" in q:
            items.append(("EncodingType", "url"))
        items += [("KeyCount", len(listing.objects) + len(listing.prefixes)), ("IsTruncated", listing.truncated)]
        if token is not None:
            items.append(("ContinuationToken", token))
        if listing.truncated and listing.next_marker is not None:
            items.append(("NextContinuationToken", _encode_token(listing.next_marker)))
        if start_after:
            items.append(("StartAfter", enc(start_after)))
        items += _contents(c, listing, enc, q.get("fetch-owner") == "true")
        return xml_reply("ListBucketResult", items)
    if q.get("list-type") not in (None, "1"):
        raise S3Error("InvalidArgument", "Invalid List Type specified in Request", ArgumentName="list-type", ArgumentValue=q["list-type"])
    marker = q.get("marker", "")
    listing = await c.run(lambda: c.store.list_objects(r.bucket, prefix=prefix, delimiter=delimiter, after=marker, max_keys=max_keys))
    items = [("Name", r.bucket), ("Prefix", enc(prefix)), ("Marker", enc(marker))]
    if listing.truncated and delimiter and listing.next_marker is not None:
        # V1 returns NextMarker only with a delimiter; without one the
        # client continues from the last key it got.
        items.append(("NextMarker", enc(listing.next_marker)))
    items += [("MaxKeys", max_keys)]
    if delimiter:
        items.append(("Delimiter", enc(delimiter)))
    if "encoding-type" in q:
        items.append(("EncodingType", "url"))
    items.append(("IsTruncated", listing.truncated))
    items += _contents(c, listing, enc, True)
    return xml_reply("ListBucketResult", items)


# -- notifications --------------------------------------------------------------


async def put_notification(c, r) -> Reply:
    root = xmlsafe.parse(r.body)
    config, others = notifications.parse_config(root)
    if await c.run(c.store.bucket, r.bucket) is None:
        raise S3Error("NoSuchBucket", BucketName=r.bucket)
    if (r.header("x-amz-skip-destination-validation") or "").lower() != "true":
        can_invoke = c.can_invoke
        if can_invoke is None:
            notifications.check_destinations(config, others, lambda f: "This server has no Lambda functions to deliver to")
        else:
            notifications.check_destinations(config, others, lambda f: can_invoke(f, r.bucket))
    elif others:
        notifications.check_destinations(notifications.NotificationConfig(), others, lambda f: None)
    await c.run(c.store.put_notification, r.bucket, config)
    return 200, [], b""


async def get_notification(c, r) -> Reply:
    config = await c.run(c.store.get_notification, r.bucket)
    return xml_reply("NotificationConfiguration", notifications.render_config(config))
