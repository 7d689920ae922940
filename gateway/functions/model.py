"""A function as Lambdalet stores it, and its Lambda wire shape."""

from __future__ import annotations

import msgspec

from .layer_records import LayerRef


class FunctionRecord(msgspec.Struct, kw_only=True):
    name: str
    runtime: str
    role: str
    handler: str
    code_sha256_hex: str
    code_sha256_b64: str
    code_size: int
    # The code's unzipped size, for the 250 MB limit it shares with the
    # layers; 0 in records stored before it was kept (read from the zip).
    code_unzipped_size: int = 0
    description: str = ""
    timeout: int = 3
    memory_size: int = 128
    environment: dict[str, str] = {}
    ephemeral_storage: int = 512
    architectures: list[str] = msgspec.field(default_factory=lambda: ["x86_64"])
    logging_config: dict[str, str] = {}
    # Layers, in order: mounted at /opt, later ones over earlier ones.
    layers: list[LayerRef] = []
    tags: dict[str, str] = {}
    revision_id: str
    last_modified: str
    created_ns: int
    state: str = "Active"
    last_update_status: str = "Successful"
    # Settings that do not change the code or configuration, so they leave
    # RevisionId (and warm instances) alone.
    url_config: dict | None = None  # {"UrlId", "AuthType", "Cors", "InvokeMode", "CreationTime", "LastModifiedTime"}
    alias_urls: dict[str, dict] = {}  # alias -> its URL config, kept on $LATEST
    reserved_concurrency: int | None = None
    # "$LATEST", or the number of a published (immutable) version.
    version: str = "$LATEST"
    # Kept on the $LATEST record only: the next version number, the
    # aliases (name -> {"FunctionVersion", "Description", "RevisionId",
    # "RoutingConfig"}) and provisioned concurrency (qualifier ->
    # {"Requested", "LastModified"}).
    next_version: int = 1
    aliases: dict[str, dict] = {}
    provisioned: dict[str, dict] = {}
    # Resource-based policy statements (AWS's statement JSON, as documents),
    # kept on $LATEST for the function ("") and each version or alias.
    policies: dict[str, list[dict]] = {}
    code_signing_config_arn: str | None = None
    signing_profile_version_arn: str | None = None  # who signed the code, when it passed the checks
    recursive_loop: str = "Terminate"  # PutFunctionRecursionConfig: Terminate or Allow
    # PutRuntimeManagementConfig: {"UpdateRuntimeOn": ..., "RuntimeVersionArn": ...}
    runtime_management: dict[str, str] = {}


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def configuration(
    rec: FunctionRecord,
    region: str,
    account: str,
    *,
    runtime_version_arn: str | None = None,
    listed: bool = False,
    qualify_latest: bool = False,
) -> dict:
    """FunctionConfiguration as botocore's model shapes it and AWS fills it.

    listed: an entry of ListFunctions, which AWS gives without State,
    LastUpdateStatus and RuntimeVersionConfig. qualify_latest: $LATEST's
    ARN with ":$LATEST", as ListFunctions with FunctionVersion=ALL and
    ListVersionsByFunction name it."""
    qualifier = None if rec.version == "$LATEST" else rec.version
    if qualify_latest:
        qualifier = rec.version
    conf = {
        "FunctionName": rec.name,
        "FunctionArn": function_arn(region, account, rec.name, qualifier),
        "Runtime": rec.runtime,
        "Role": rec.role,
        "Handler": rec.handler,
        "CodeSize": rec.code_size,
        "Description": rec.description,
        "Timeout": rec.timeout,
        "MemorySize": rec.memory_size,
        "LastModified": rec.last_modified,
        "CodeSha256": rec.code_sha256_b64,
        "Version": rec.version,
        # AWS includes the (possibly empty) variables in every configuration.
        "Environment": {"Variables": dict(rec.environment)},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": rec.revision_id,
        "PackageType": "Zip",
        "Architectures": list(rec.architectures),
        "EphemeralStorage": {"Size": rec.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {
            "LogFormat": rec.logging_config.get("LogFormat", "Text"),
            "LogGroup": rec.logging_config.get("LogGroup", f"/aws/lambda/{rec.name}"),
            **{k: v for k, v in rec.logging_config.items() if k in ("ApplicationLogLevel", "SystemLogLevel")},
        },
    }
    if rec.layers:
        conf["Layers"] = [{"Arn": layer.arn, "CodeSize": layer.code_size} for layer in rec.layers]
    if rec.signing_profile_version_arn:
        conf["SigningProfileVersionArn"] = rec.signing_profile_version_arn
    if not listed:
        conf["State"] = rec.state
        conf["LastUpdateStatus"] = rec.last_update_status
        if runtime_version_arn is not None:
            conf["RuntimeVersionConfig"] = {"RuntimeVersionArn": runtime_version_arn}
    return conf
