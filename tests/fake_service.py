"""A stand-in for FunctionService where the async tests need only names and
ARNs: its records are real FunctionRecords ($LATEST, with their defaults),
so the code under test reads them as it reads the service's."""

from __future__ import annotations

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.functions.model import FunctionRecord


def record(name: str) -> FunctionRecord:
    return FunctionRecord(
        name=name,
        runtime="python3.11",
        role="arn:aws:iam::000000000000:role/r",
        handler="app.handler",
        code_sha256_hex="0" * 64,
        code_sha256_b64="",
        code_size=1,
        revision_id=f"rev-{name}",
        last_modified="",
        created_ns=0,
    )


class FakeService:
    region = "us-east-1"
    account = "000000000000"

    def __init__(self, *names: str) -> None:
        self.registry = {n: record(n) for n in names}
        self.versions: dict[str, dict[str, FunctionRecord]] = {}  # no published versions

    def arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def resolve(self, ref: str, qualifier: str | None = None) -> FunctionRecord:
        if ref not in self.registry:
            raise LambdaError("ResourceNotFoundException", f"Function not found: {self.arn(ref)}")
        return self.registry[ref]
