"""What the pool needs to run each revision of a function (FunctionSpec),
made once per revision from its record and kept until the function changes.

Every path that calls a function (Invoke, function URLs, the async queue,
event source mappings, the console, the embedding API) asks the same
FunctionSpecs, so a call's environment is the same whichever door it came in by.
"""

from __future__ import annotations

from ..functions.function_configs import pinned_elsewhere
from ..functions.model import FunctionRecord
from ..functions.service import FunctionService
from . import languages
from .outcomes import FunctionSpec


class FunctionSpecs:
    def __init__(self, service: FunctionService) -> None:
        self.service = service
        self._specs: dict[str, FunctionSpec] = {}  # revision id -> spec

    def forget(self, name: str) -> None:
        for rev, spec in list(self._specs.items()):
            if spec.record.name == name:
                del self._specs[rev]

    def spec_for(self, rec: FunctionRecord) -> FunctionSpec:
        """Raises InvalidRuntimeException for a function whose runtime this
        server cannot run (stored before it was started without it)."""
        spec = self._specs.get(rec.revision_id)
        if spec is None:
            pinned = pinned_elsewhere(rec, self.service.runtime_version_arn(rec))
            if pinned is not None:
                raise pinned
            resolved = self.service.runtimes.for_invoke(rec.runtime)
            toolchain = resolved.toolchain
            spec = FunctionSpec(
                record=rec,
                code_dir=str(self.service.codes.tree_path(rec.code_sha256_hex)),
                arn=self.service.arn(rec.name, None if rec.version == "$LATEST" else rec.version),
                version=rec.version,
                env=lambda_environment(rec, self.service.region, resolved.execution_env, custom=resolved.custom, python=toolchain is None),
                log_group=rec.logging_config.get("LogGroup", f"/aws/lambda/{rec.name}"),
                runtime=resolved.interpreter.runtime,
                runtime_version=resolved.runtime_version,
                runtime_mapping=resolved.note(),
                custom=resolved.custom,
                launch=None if toolchain is None else languages.launch_for(toolchain, rec.memory_size),
                layers=tuple(str(self.service.codes.tree_path(layer.sha256_hex)) for layer in rec.layers),
            )
            self._specs[rec.revision_id] = spec
        return spec


def lambda_environment(
    rec: FunctionRecord, region: str, execution_env: str | None = None, *, custom: bool = False, python: bool = True
) -> dict[str, str]:
    """execution_env: AWS_EXECUTION_ENV, naming the interpreter that runs
    (gateway/functions/runtimes.py); by default the Runtime's own name. custom: an
    OS-only runtime (provided.*), whose bootstrap gets the environment AWS
    gives one: no AWS_EXECUTION_ENV, no Python settings, its own PATH and
    LD_LIBRARY_PATH (AWS_LAMBDA_RUNTIME_API is added where it listens).
    python: False for a Node.js, Java or C# function (no Python settings)."""
    env = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": execution_env or f"AWS_Lambda_{rec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": rec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(rec.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": rec.logging_config.get("LogGroup", f"/aws/lambda/{rec.name}"),
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": rec.handler,
        "PYTHONIOENCODING": "utf-8",
    }
    if not python or custom:
        del env["PYTHONIOENCODING"]
    if custom:
        del env["AWS_EXECUTION_ENV"]
        env["PATH"] = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
        env["LD_LIBRARY_PATH"] = "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
    if rec.logging_config.get("LogFormat") == "JSON":
        # As on AWS: the runtime reads these to write JSON records at this level.
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        env["AWS_LAMBDA_LOG_LEVEL"] = rec.logging_config.get("ApplicationLogLevel", "INFO")
    env.update(rec.environment)
    return env
