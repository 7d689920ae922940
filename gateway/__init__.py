"""The gateway: Lambda's API, the data plane, the scheduler.

Rooms, each with a map in its __init__.py; each imports only the rooms
above it in this list (tests/test_layout.py checks, docs/architecture.md
says why this order):

- http/       bytes <-> requests, nothing of Lambda.
- metering/   what a call is recorded as: counters, usage, logs, bills.
- functions/  the control plane's domain, no HTTP: functions, versions,
              settings, code.
- execution/  running calls in sandboxes: the pool, instances, spares, the
              Runtime API for custom runtimes.
- events/     calls that come from elsewhere: the async queue, schedules,
              S3, SQS, event source mappings.
- api/        Lambda's HTTP surface (and S3's and SQS's) and its auth.
- console/    the web console at /console, on the control plane's app.
- app/        the composition root: the server assembled from the above.
- cli/        the `lambdalet` command; the server never imports it.

Shared by every room, importing none: errors.py (LambdaError, Lambda's
error shape), ids.py (request ids), crashpoints.py (kill points for the
durability tests), lambda_model.py (botocore's Lambda service model, loaded
once: the errors' table and the requests' constraints both read it).
"""
