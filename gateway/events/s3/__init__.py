"""The built-in S3-compatible object store, without HTTP.

- names.py          S3's rules for bucket names and object keys.
- errors.py         S3Error: S3's error codes, statuses and wording.
- xmlsafe.py        parsing S3's request XML defensively (no DTDs, no
                    entities, bounded) and writing its response XML.
- blobs.py          content-addressed files (sha256), fsynced before use.
- store.py          ObjectStore: buckets, objects and the event outbox in
                    one SQLite file (s3.db).
- schema.py         s3.db's tables.
- records.py        the store's records (objects, buckets, parts, uploads,
                    listings, outbox rows) and their JSON columns.
- blob_refs.py      the blobs' reference counts, staged writes and the quota.
- listing.py        ListObjects' pages: byte order, delimiters, markers.
- multipart.py      multipart uploads: parts, completion, abort.
- notifications.py  bucket notification configurations (parsed and validated
                    as S3 does) and AWS's S3 event record.
- outbox.py         moves committed events from s3.db into the async queue,
                    idempotently, so an object and its event are one step.
- chunked.py        aws-chunked request bodies (signed chunks, trailers).

The HTTP surface lives in gateway/api/s3/.
"""
