"""SQS's errors, with both names a client may know them by.

SQS moved from the query protocol to JSON keeping its old error codes:
a JSON answer carries the shape's name in ``__type`` and the query code in
the ``x-amzn-query-error`` header, which botocore reports as the error code
(``AWS.SimpleQueueService.NonExistentQueue``) while raising the modeled
exception class (``QueueDoesNotExist``).
"""

from __future__ import annotations

# shape name -> (query protocol code, HTTP status)
ERRORS: dict[str, tuple[str, int]] = {
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "InvalidAddress": ("InvalidAddress", 404),
    "InvalidAttributeName": ("InvalidAttributeName", 400),
    "InvalidAttributeValue": ("InvalidAttributeValue", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "InvalidMessageContents": ("InvalidMessageContents", 400),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "OverLimit": ("OverLimit", 403),
    "PurgeQueueInProgress": ("AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    "QueueDeletedRecently": ("AWS.SimpleQueueService.QueueDeletedRecently", 400),
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "ReceiptHandleIsInvalid": ("ReceiptHandleIsInvalid", 404),
    "TooManyEntriesInBatchRequest": ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    # Not modeled, but what SQS answers.
    "InvalidParameterValue": ("InvalidParameterValue", 400),
    "MissingParameter": ("MissingParameter", 400),
    "InvalidAction": ("InvalidAction", 400),
    "MalformedQueryString": ("MalformedQueryString", 400),
    "InternalFailure": ("InternalFailure", 500),
    # Authentication, AWS-wide.
    "InvalidClientTokenId": ("InvalidClientTokenId", 403),
    "SignatureDoesNotMatch": ("SignatureDoesNotMatch", 403),
    "MissingAuthenticationToken": ("MissingAuthenticationToken", 403),
    "IncompleteSignature": ("IncompleteSignature", 403),
    "RequestExpired": ("RequestExpired", 400),
    "RequestTimeout": ("RequestTimeout", 408),
    "RequestEntityTooLarge": ("RequestEntityTooLarge", 413),
    "Throttling": ("Throttling", 400),
}


class SqsError(Exception):
    def __init__(self, name: str, message: str, *, sender: bool = True) -> None:
        if name not in ERRORS:
            raise ValueError(f"unknown SQS error {name}")
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.query_code, self.status = ERRORS[name]
        self.fault = "Sender" if sender and self.status < 500 else "Receiver"


def invalid(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def no_queue() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")
