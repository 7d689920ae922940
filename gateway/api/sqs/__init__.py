"""The SQS API of the built-in queues (gateway/events/sqs/).

- surface.py  the Surface the router hands SQS requests to: SigV4 (scope
              service sqs), the JSON protocol current SDKs speak
              (X-Amz-Target: AmazonSQS.*) and the query protocol older ones
              speak (Action=...&Version=2012-11-05), one table of operations.
- query.py    the query protocol: form parameters to the JSON request's
              shape, and answers and errors as SQS's XML.
"""
