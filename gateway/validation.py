"""Checks on CreateFunction/UpdateFunctionConfiguration input.

Patterns and ranges come from botocore's Lambda model; messages follow the
wording AWS uses for the same mistakes.
"""
from __future__ import annotations

import re

from .errors import invalid
from .runtimes import CUSTOM_RUNTIMES, MODEL_LANGUAGE_RUNTIMES, MODEL_PYTHON_RUNTIMES

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# FunctionName as a name, partial ARN or full ARN, with an optional qualifier.
FUNCTION_REF_RE = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9_.-]+)"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
HANDLER_RE = re.compile(r"^[^\s]{1,128}$")
ROLE_RE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
ENV_KEY_RE = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")
QUALIFIER_RE = re.compile(r"^(\$LATEST|[a-zA-Z0-9_-]{1,128})$")


# Lambda reserves these; setting one is refused, as on AWS.
RESERVED_ENV = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)
ENV_MAX_BYTES = 4096


def function_ref(value: object) -> tuple[str, str | None]:
    """Parses a FunctionName path parameter into (name, qualifier)."""
    if not isinstance(value, str) or not value or len(value) > 170:
        raise invalid(f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 170")
    m = FUNCTION_REF_RE.match(value)
    if not m or len(m.group("name")) > 64:
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: "
            r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    return m.group("name"), m.group("qualifier")


def new_function_name(value: object) -> str:
    name, qualifier = function_ref(value)
    if qualifier is not None or not NAME_RE.match(name):
        raise invalid(f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+")
    return name


def qualifier(value: str | None) -> str | None:
    if value is None:
        return None
    if not QUALIFIER_RE.match(value):
        raise invalid(f"1 validation error detected: Value '{value}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)")
    return value


MODEL_RUNTIMES = MODEL_PYTHON_RUNTIMES + MODEL_LANGUAGE_RUNTIMES + ("provided",) + CUSTOM_RUNTIMES


def runtime(value: object) -> str:
    """A runtime name from Lambda's model (Python, Node.js, Java, .NET, OS-only). Whether this
    host can run it is the RuntimeCatalog's to say (gateway/runtimes.py)."""
    if value not in MODEL_RUNTIMES:
        raise invalid(
            f"Value {value} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(MODEL_RUNTIMES)}] or be a valid ARN"
        )
    return value  # type: ignore[return-value]


def handler(value: object, runtime_name: str) -> str:
    if not isinstance(value, str) or not HANDLER_RE.match(value):
        raise invalid(f"1 validation error detected: Value '{value}' at 'handler' failed to satisfy constraint: Member must satisfy regular expression pattern: [^\\s]+")
    if runtime_name.startswith("python") and ("." not in value or value.startswith(".") or value.endswith(".")):
        raise invalid(f"Handler '{value}' is not valid for {runtime_name}: expected module.function, e.g. app.handler")
    return value


def role(value: object) -> str:
    if not isinstance(value, str) or not ROLE_RE.match(value):
        raise invalid(f"1 validation error detected: Value '{value}' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{{12}}:role/?[a-zA-Z_0-9+=,.@\\-_/]+")
    return value


def int_range(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have value between {low} and {high}")
    return value


def memory(value: object) -> int:
    return int_range(value, "memorySize", 128, 10240)


def timeout(value: object) -> int:
    return int_range(value, "timeout", 1, 900)


def ephemeral(value: object) -> int:
    if not isinstance(value, dict):
        raise invalid("EphemeralStorage must be an object with Size")
    return int_range(value.get("Size"), "ephemeralStorage.size", 512, 10240)


def architectures(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) != 1 or value[0] not in ("x86_64", "arm64"):
        raise invalid(f"1 validation error detected: Value '{value}' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1, and each member must satisfy enum value set: [x86_64, arm64]")
    return list(value)


def description(value: object) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise invalid("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
    return value


def environment(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid("Environment must be an object with Variables")
    variables = value.get("Variables", {})
    if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise invalid("Environment.Variables must map strings to strings")
    bad = [k for k in variables if not ENV_KEY_RE.match(k)]
    if bad:
        raise invalid(f"1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+] ({', '.join(bad)})")
    reserved = sorted(k for k in variables if k in RESERVED_ENV)
    if reserved:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            "provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}"
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    if size > ENV_MAX_BYTES:
        raise invalid(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            f"provided exceeded the 4KB limit. String measured: {size} bytes"
        )
    return dict(variables)


def logging_config(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid("LoggingConfig must be an object")
    out: dict[str, str] = {}
    fmt = value.get("LogFormat")
    if fmt is not None:
        if fmt not in ("Text", "JSON"):
            raise invalid(f"Value {fmt} at 'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy enum value set: [Text, JSON]")
        out["LogFormat"] = fmt
    for key, allowed in (("ApplicationLogLevel", ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")), ("SystemLogLevel", ("DEBUG", "INFO", "WARN"))):
        level = value.get(key)
        if level is not None:
            if level not in allowed:
                raise invalid(f"Value {level} at 'loggingConfig.{key[0].lower() + key[1:]}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
            out[key] = level
    group = value.get("LogGroup")
    if group is not None:
        if not isinstance(group, str) or not re.match(r"^[\.\-_/#A-Za-z0-9]{1,512}$", group):
            raise invalid(f"Value {group} at 'loggingConfig.logGroup' failed to satisfy constraint")
        out["LogGroup"] = group
    return out


NETWORK_TAG = "lambdalet:network"
NETWORKS = ("none", "egress")


def validate_tags(tags: object) -> dict[str, str]:
    """Tags as AWS allows them, and lambdalet:network as this server reads it:
    "none" (the default: loopback only) or "egress" (NAT to the outside)."""
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(val, str) for k, val in tags.items()):
        raise invalid("Tags must be a map of strings")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            raise invalid(f"Invalid tag: {key!r}")
    if tags.get(NETWORK_TAG, "none") not in NETWORKS:
        raise invalid(f"Tag {NETWORK_TAG} must be one of: {', '.join(NETWORKS)}")
    return dict(tags)
