"""What the object store hands out: the records of buckets, objects, parts,
uploads, listings and outbox events, and how their JSON columns are coded
in s3.db. Pure data, no I/O."""

from __future__ import annotations

import msgspec


class ObjectMeta(msgspec.Struct, frozen=True):
    """What an upload says about the object besides its bytes."""

    user: dict[str, str] = {}  # x-amz-meta-*, names lower-cased
    headers: dict[str, str] = {}  # Cache-Control, Content-Disposition, ... as sent
    checksums: dict[str, str] = {}  # e.g. {"CRC32": "base64"}, full-object only


class ObjectInfo(msgspec.Struct, frozen=True):
    bucket: str
    key: str
    size: int
    etag: str
    modified_s: float
    content_type: str
    meta: ObjectMeta
    parts: list[tuple[str, int]]

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'


class BucketInfo(msgspec.Struct, frozen=True):
    name: str
    created_s: float


class PartInfo(msgspec.Struct, frozen=True):
    number: int
    sha: str
    size: int
    etag: str
    modified_s: float
    checksums: dict[str, str]


class UploadInfo(msgspec.Struct, frozen=True):
    id: str
    bucket: str
    key: str
    created_s: float
    content_type: str
    meta: ObjectMeta


class Listing(msgspec.Struct, frozen=True):
    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    next_marker: str | None  # the last key or prefix returned, when truncated


class OutboxRow(msgspec.Struct, frozen=True):
    id: str
    created_s: float
    function: str
    qualifier: str
    payload: bytes
    source_arn: str


meta_enc = msgspec.json.Encoder()
meta_dec = msgspec.json.Decoder(ObjectMeta)
parts_dec = msgspec.json.Decoder(list[tuple[str, int]])
dict_dec = msgspec.json.Decoder(dict[str, str])

# The objects table's columns, in the order row_to_info reads them.
OBJECT_COLUMNS = "bucket, key, size, etag, modified_s, content_type, meta, parts"


def row_to_info(row) -> ObjectInfo:
    bucket, key, size, etag, modified_s, content_type, meta, parts = row
    return ObjectInfo(bucket, key, size, etag, modified_s, content_type, meta_dec.decode(meta), parts_dec.decode(parts))


def upload_from_row(row) -> UploadInfo:
    """A row of SELECT id, bucket, key, created_s, content_type, meta FROM uploads."""
    return UploadInfo(row[0], row[1], row[2], row[3], row[4], meta_dec.decode(row[5]))
