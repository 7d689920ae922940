"""Lambda's HTTP surface and its auth, and the other services on the port.

- router.py       which code answers a request, and the one place auth is
                  checked; implements http/'s Handler for both ports.
- sigv4.py        SigV4 verification: the checks a head allows, then the
                  signature over the body, compared in constant time.
- sigv4_canonical.py  the canonical request (botocore's, templated per shape
                  of request) and the signature's HMACs. Pure.
- sigv4_parse.py  what a request claims about its signature (header or
                  presigned query), its signing time and the clock. Pure.
- credentials.py  the server's keys: <data-dir>/credentials.
- operations.py   which Lambda operation a request is (method and request
                  URI from botocore's model) and its input by member name;
                  validated there before any handler runs.
- unsupported.py  the Lambda operations that mean nothing on one host, each
                  with the reason it answers with.
- invoke.py       Invoke on the fast path: no framework between the socket
                  and the pool.
- url_handler.py  function URLs on the fast path; url_events.py maps their
                  requests and responses as AWS does (sans-IO).
- streaming.py    InvokeWithResponseStream and RESPONSE_STREAM function
                  URLs: a call's CallStream sent as it comes;
                  event_stream.py is AWS's event-stream framing (sans-IO).
- control.py      the control plane's routes on quart-trio (functions,
                  versions, aliases, settings, code download links);
                  policy_routes.py (AddPermission, RemovePermission,
                  GetPolicy), code_signing_routes.py and
                  function_config_routes.py (recursion and runtime
                  management configs) add theirs to it.
- async_api.py    event-invoke configs, async invoke and schedules routes.
- esm_api.py      event source mapping routes.
- usage_api.py    /_lambdalet/usage, /_lambdalet/logs and /metrics.
- services.py     which service a request is for (Lambda, S3, SQS), told
                  apart cheaply by the SigV4 credential scope, and the
                  Surface protocol every non-Lambda service implements.
- s3/             the S3 API of the built-in object store.
- sqs/            the SQS API of the built-in queues (JSON and query
                  protocols).
- s3_webhook.py   bucket notifications from external S3-compatible stores
                  (MinIO, Ceph RGW) run as S3 events.
"""
