"""The S3 API of the built-in object store (gateway/events/s3/).

- addressing.py  bucket, key and sub-resource from a request: path-style
                 (/bucket/key) and virtual-hosted-style (bucket.localhost).
- auth.py        SigV4 for S3 (scope service s3, UNSIGNED-PAYLOAD,
                 aws-chunked) with S3's own error codes.
- replies.py     S3's XML documents, error replies and object headers.
- surface.py     the Surface the router hands S3 requests to: limits,
                 refusals before the body, and dispatch to an operation.
- buckets.py     bucket operations, listings and notification configuration.
- objects.py     object operations: PUT, GET and HEAD, DELETE, copy.
- object_input.py  what an upload says about its object (metadata,
                 storage class, Content-MD5 and checksums, PUT conditions).
- conditions.py  a read's preconditions (If-Match, ...) and its range.
- multipart.py   multipart uploads: create, parts, list, abort, complete.
"""
