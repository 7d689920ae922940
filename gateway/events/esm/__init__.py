"""Event source mappings: functions run on batches of queue messages.

- mappings.py  Create/Get/Update/Delete/ListEventSourceMappings for the
               built-in queues, validated as Lambda validates an SQS
               mapping, kept in queue.db; starts and stops the pollers.
- batch.py     the SQS event a batch becomes, and what a function's
               ReportBatchItemFailures answer says to delete. Sans-IO.
- poller.py    one mapping's poller: gather a batch (BatchSize,
               MaximumBatchingWindowInSeconds), invoke, delete what
               succeeded; what failed returns after the visibility timeout
               and, past maxReceiveCount, goes to the queue's DLQ.
"""
