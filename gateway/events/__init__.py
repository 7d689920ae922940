"""Events: where a function's calls come from besides Invoke.

Today the async queue, its store, event configs, destinations and the
scheduler still sit flat in gateway/ (they move here when gateway/ is split
into rooms); the event sources from other services start here:

- s3/    the built-in S3-compatible object store (buckets, objects, multipart
         uploads, content-addressed blobs), bucket notifications, the S3
         event record, and the outbox that turns a stored object into a
         durable async event.
- sqs/   the built-in durable queues as SQS sees them (attributes, visibility,
         receipt handles, redrive to a dead-letter queue).
- esm/   event source mappings: pollers that run a function on batches of
         queue messages.
- policy.py  the seam through which an event source asks whether a function
         lets a service principal invoke it.
"""
