"""The built-in durable queues as SQS sees them, without HTTP.

The queues are queue.db's (the dead-letter queue and destination queues of
async invocation, gateway/events/async_store.py); this package gives them SQS's
attributes, visibility timeouts, receipt handles and redrive policy.

- errors.py   SqsError: the error shapes of SQS (modeled and not), with
              the codes its query protocol used.
- md5.py      SQS's MD5 of a message body and of its attributes.
- store.py    the SQL of queues and messages in queue.db.
- queues.py   the operations on queues (CreateQueue, attributes, purge,
              redrive policy, tags, ...), validated as SQS validates them.
- service.py  the operations on messages (send, receive with long polling,
              delete, visibility), and the wake-ups event source mappings
              wait on.
- message_checks.py  what a message operation's input must be (integers,
              receipt handles, bodies, attributes, batch entries). Pure.

The HTTP surface (JSON and query protocols) lives in gateway/api/sqs/.
"""
