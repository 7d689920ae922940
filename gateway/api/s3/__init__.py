"""The S3 API of the built-in object store (gateway/events/s3/).

- addressing.py  bucket, key and sub-resource from a request: path-style
                 (/bucket/key) and virtual-hosted-style (bucket.localhost).
- auth.py        SigV4 for S3 (scope service s3, UNSIGNED-PAYLOAD,
                 aws-chunked) with S3's own error codes.
- replies.py     S3's XML documents, error replies and object headers.
- surface.py     the Surface the router hands S3 requests to: limits,
                 refusals before the body, and dispatch to an operation.
- buckets.py     bucket operations, listings and notification configuration.
- objects.py     object operations and multipart uploads.
"""
