"""Platform errors and their one translation into Lambda's wire shape.

Function errors (the handler raised, timed out, ran out of memory) are not
here: they are results, returned as 200 with X-Amz-Function-Error.
"""
from __future__ import annotations

import msgspec

# type -> (HTTP status, name of the message member in botocore's model)
ERROR_TABLE: dict[str, tuple[int, str]] = {
    "InvalidParameterValueException": (400, "message"),
    "InvalidRequestContentException": (400, "message"),
    "UnsupportedMediaTypeException": (415, "message"),
    "ResourceNotFoundException": (404, "Message"),
    "ResourceConflictException": (409, "message"),
    "PreconditionFailedException": (412, "message"),
    "RequestTooLargeException": (413, "message"),
    "TooManyRequestsException": (429, "message"),
    # Not in Lambda's model: AWS's front ends send it for a request that
    # arrived too slowly, and botocore retries it as a transient error.
    "RequestTimeoutException": (408, "message"),
    "ServiceException": (500, "Message"),
    "ProvisionedConcurrencyConfigNotFoundException": (404, "message"),
    "ResourceNotReadyException": (502, "message"),
    "InvalidRuntimeException": (502, "Message"),
    "CodeStorageExceededException": (400, "message"),
    "PolicyLengthExceededException": (400, "message"),
    # Authentication failures are AWS-wide, not in Lambda's model.
    "MissingAuthenticationTokenException": (403, "message"),
    "UnrecognizedClientException": (403, "message"),
    "InvalidSignatureException": (403, "message"),
    "IncompleteSignatureException": (403, "message"),
    "AccessDeniedException": (403, "Message"),
    "UnknownOperationException": (404, "message"),
    "MethodNotAllowedException": (405, "message"),
}

_USER_FAULT = {"ServiceException", "ResourceNotReadyException", "InvalidRuntimeException"}


class LambdaError(Exception):
    """A platform error with a Lambda exception type."""

    def __init__(self, error_type: str, message: str, **extra: object) -> None:
        if error_type not in ERROR_TABLE:
            raise ValueError(f"unknown error type {error_type}")
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return ERROR_TABLE[self.error_type][0]

    def body(self) -> bytes:
        member = ERROR_TABLE[self.error_type][1]
        doc: dict[str, object] = {
            "Type": "Service" if self.error_type in _USER_FAULT else "User",
            member: self.message,
        }
        doc.update(self.extra)
        return msgspec.json.encode(doc)

    def headers(self) -> list[tuple[str, str]]:
        return [("x-amzn-ErrorType", self.error_type), ("Content-Type", "application/json")]


def not_found(arn: str) -> LambdaError:
    return LambdaError("ResourceNotFoundException", f"Function not found: {arn}")


def invalid(message: str) -> LambdaError:
    return LambdaError("InvalidParameterValueException", message)
