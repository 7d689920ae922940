"""The semantic checks of Lambda's requests: what AWS checks in the
operation itself, after the model's constraints passed.

The model's constraints (patterns, lengths, ranges, enums, required members)
are checked first, for every request, by functions/constraints.py: a
ValidationException before any function is looked up. What is here is what
the model cannot say, in AWS's words for it, usually
InvalidParameterValueException: a function name longer than 64 when it is
not an ARN, a Timeout over 900 for a function that is not on a capacity
provider, reserved environment variables and the 4 KB of their JSON, 50
tags. Each function also runs its model check, so that a caller other than
the HTTP API (a stored destination, a test) gets the same answer.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import LambdaError, invalid
from . import constraints
from .runtimes import CUSTOM_RUNTIMES, MODEL_LANGUAGE_RUNTIMES, MODEL_PYTHON_RUNTIMES

# FunctionName as a name, partial ARN or full ARN, with an optional
# qualifier: the model's NamespacedFunctionName, with its parts named.
FUNCTION_REF_RE = re.compile(
    r"^(?:arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:)?(?:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9_.-]+)"
    r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]+))?$"
)
NAME_MAX = 64  # a bare name; an ARN may be longer (the model's 140 or 256)

# Lambda reserves these; setting one is refused, as on AWS.
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
ENV_MAX_BYTES = 4096
TAGS_MAX = 50
# Limits of a function that runs on Lambda's own fleet; the model allows
# more for functions on capacity providers, which this server has none of.
TIMEOUT_MAX = 900
MEMORY_MAX = 10240
EPHEMERAL_MAX = 10240


def modeled(shape: str, value: object, path: str) -> object:
    """The model's constraints on one value, as the API checks them."""
    checker = constraints.Checker()
    try:
        checker.value(shape, value, path)
    except constraints.TypeMismatch as exc:
        raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
    if checker.violations:
        raise LambdaError("ValidationException", constraints.message(checker.violations))
    return value


def semantic_limit(value: object, path: str, constraint: str) -> LambdaError:
    """AWS words some semantic limits as validation errors, but sends them
    as InvalidParameterValueException."""
    return invalid(
        f"1 validation error detected: Value '{constraints.java_text(value)}' at '{path}' failed to satisfy constraint: {constraint}"
    )


def function_ref(value: object) -> tuple[str, str | None]:
    """A FunctionName (name, partial or full ARN, optional qualifier) as
    (name, qualifier)."""
    m = FUNCTION_REF_RE.match(value) if isinstance(value, str) else None
    if m is None:
        # The model's pattern says the same, in AWS's words (FUNCTION_REF_RE
        # only names its parts); a request broke it before it got here.
        modeled("NamespacedFunctionName", value, "functionName")
        raise AssertionError(f"FUNCTION_REF_RE and the model disagree on {value!r}")
    if len(m.group("name")) > NAME_MAX:
        raise semantic_limit(value, "functionName", f"Member must have length less than or equal to {NAME_MAX}")
    return m.group("name"), m.group("qualifier")


def function_scope(value: str) -> tuple[str | None, str | None]:
    """The region and account a FunctionName names, where it names them."""
    m = FUNCTION_REF_RE.match(value)
    return (m.group("region"), m.group("account")) if m else (None, None)


def new_function_name(value: object) -> str:
    modeled("FunctionName", value, "functionName")
    name, qualifier = function_ref(value)
    if qualifier is not None or "." in name:
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
        )
    return name


def qualifier(value: str | None) -> str | None:
    if value is None:
        return None
    modeled("Qualifier", value, "qualifier")
    return value


MODEL_RUNTIMES = MODEL_PYTHON_RUNTIMES + MODEL_LANGUAGE_RUNTIMES + ("provided",) + CUSTOM_RUNTIMES


def runtime(value: object) -> str:
    """A runtime name from Lambda's model (Python, Node.js, Java, .NET, OS-only). Whether this
    host can run it is the RuntimeCatalog's to say (gateway/functions/runtimes.py)."""
    if value not in MODEL_RUNTIMES:
        raise invalid(
            f"Value {value} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(MODEL_RUNTIMES)}] or be a valid ARN"
        )
    return value


def handler(value: object, runtime_name: str) -> str:
    modeled("Handler", value, "handler")
    if runtime_name.startswith("python") and ("." not in value or value.startswith(".") or value.endswith(".")):  # type: ignore[attr-defined, operator]
        raise invalid(f"Handler '{value}' is not valid for {runtime_name}: expected module.function, e.g. app.handler")
    return value  # type: ignore[return-value]


def role(value: object) -> str:
    return modeled("RoleArn", value, "role")  # type: ignore[return-value]


def at_most(value: int, path: str, high: int) -> int:
    if value > high:
        raise semantic_limit(value, path, f"Member must have value less than or equal to {high}")
    return value


def memory(value: object) -> int:
    return at_most(modeled("MemorySize", value, "memorySize"), "memorySize", MEMORY_MAX)  # type: ignore[arg-type]


def timeout(value: object) -> int:
    return at_most(modeled("Timeout", value, "timeout"), "timeout", TIMEOUT_MAX)  # type: ignore[arg-type]


def ephemeral(value: object) -> int:
    modeled("EphemeralStorage", value, "ephemeralStorage")
    return at_most(value["Size"], "ephemeralStorage.size", EPHEMERAL_MAX)  # type: ignore[index]


def architectures(value: object) -> list[str]:
    return list(modeled("ArchitecturesList", value, "architectures"))  # type: ignore[call-overload]


def description(value: object) -> str:
    return modeled("Description", value, "description")  # type: ignore[return-value]


def environment(value: object) -> dict[str, str]:
    modeled("Environment", value, "environment")
    variables = value.get("Variables") or {}  # type: ignore[attr-defined]
    reserved = sorted(k for k in variables if k in RESERVED_ENV)
    if reserved:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            "provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}"
        )
    # AWS measures the variables' JSON, as it stores them, and shows it.
    measured = msgspec.json.encode(variables).decode()
    if len(measured.encode()) > ENV_MAX_BYTES:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            f"provided exceeded the 4KB limit. String measured: {measured}"
        )
    return dict(variables)


def logging_config(value: object) -> dict[str, str]:
    modeled("LoggingConfig", value, "loggingConfig")
    return {k: value[k] for k in ("LogFormat", "ApplicationLogLevel", "SystemLogLevel", "LogGroup") if value.get(k) is not None}  # type: ignore[attr-defined, index]


NETWORK_TAG = "lambdalet:network"
NETWORKS = ("none", "egress")


def validate_tags(tags: object, existing: dict[str, str] | None = None) -> dict[str, str]:
    """Tags as AWS allows them (the model's patterns and lengths, at most 50
    on a resource together with those it has), and lambdalet:network as
    this server reads it: "none" (the default: loopback only) or "egress"
    (NAT to the outside)."""
    modeled("Tags", tags, "tags")
    merged = {**(existing or {}), **tags}  # type: ignore[dict-item]
    if len(merged) > TAGS_MAX:
        raise invalid("Number of tags exceeds resource tag limit.")
    for key in tags:  # type: ignore[attr-defined]
        if key.lower().startswith("aws:"):
            raise invalid(f"Tag keys starting with 'aws:' are reserved for AWS use: {key}")
    if merged.get(NETWORK_TAG, "none") not in NETWORKS:
        raise invalid(f"Tag {NETWORK_TAG} must be one of: {', '.join(NETWORKS)}")
    return dict(tags)  # type: ignore[call-overload]
