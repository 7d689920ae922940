"""s3.db's tables, created when missing (CREATE ... IF NOT EXISTS), so a
data dir made by an earlier run opens as it is. What each table is for is
store.py's; a change here is a change of the on-disk layout.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created_s REAL NOT NULL,
    notification BLOB               -- the bucket's notification configuration, as JSON
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,              -- compared as UTF-8 bytes, S3's listing order
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,             -- without quotes
    modified_s REAL NOT NULL,
    content_type TEXT NOT NULL,
    meta BLOB NOT NULL,             -- user metadata, stored headers, checksums (JSON)
    parts BLOB NOT NULL,            -- [[sha256, size], ...]: the blobs, in order
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    sha TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL           -- objects and upload parts naming it
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    created_s REAL NOT NULL,
    content_type TEXT NOT NULL,
    meta BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_bucket ON uploads(bucket, key);
CREATE TABLE IF NOT EXISTS parts (
    upload TEXT NOT NULL,
    number INTEGER NOT NULL,
    sha TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_s REAL NOT NULL,
    checksums BLOB NOT NULL,
    PRIMARY KEY (upload, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,        -- becomes the async event's request id
    created_s REAL NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    payload BLOB NOT NULL,          -- the S3 event, {"Records": [...]}
    source_arn TEXT NOT NULL        -- arn:aws:s3:::bucket, for the permission check
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""
