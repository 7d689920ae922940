"""Events: where a function's calls come from besides Invoke.

Asynchronous invocation:
- async_store.py    queue.db: queued events, event-invoke configs, the
                    built-in destination queues and schedules, one SQLite
                    file so that what must happen together commits together.
- async_queue.py    the durable async queue's trio dispatcher: retries,
                    maximum age, destinations, the dead-letter queue.
- async_pending.py  what the queue keeps of an event between attempts, its
                    statistics, and how long retries wait. Pure.
- async_intake.py   group commit of Event invokes (one fsync for many).
- async_followup.py where a finished event's record goes next (a function,
                    a queue, or the dead-letter queue).
- async_metrics.py  the queue's gauges for /metrics.
- event_config.py   Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s).
- destinations.py   where an async call's record goes, and what it says.
- scheduler.py      rate(...) and cron(...) schedules fired into the queue.
- schedule_expr.py  EventBridge schedule expressions. Pure.

Event sources from other services:
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
