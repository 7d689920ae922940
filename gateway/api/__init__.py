"""The server's HTTP surfaces besides the data plane's fast path.

- services.py       which service a request is for (Lambda, S3, SQS), told
                    apart cheaply by the SigV4 credential scope and the
                    request, and the Surface protocol every non-Lambda
                    service implements.
- s3/               the S3 API of the built-in object store.
- sqs/              the SQS API of the built-in queues (JSON and query protocols).
- operations.py     which Lambda operation a request is (method and request
                    URI from botocore's model) and its input by member name,
                    from the path, query string, headers and JSON body;
                    validated there before any handler runs.
- unsupported.py    the Lambda operations that mean nothing on one host, each
                    with the reason it answers with.
- policy_routes.py  AddPermission, RemovePermission, GetPolicy.

router, sigv4, invoke, url_handler, control, async_api and usage_api join
this package when gateway/ is split into rooms (see the project's layout
notes).
"""
