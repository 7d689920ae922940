"""A stand-in for FunctionService where the async tests need only names and ARNs."""
from __future__ import annotations

from lambdalet.gateway.errors import LambdaError


class _Rec:
    def __init__(self, name: str) -> None:
        self.name = name
        self.recursive_loop = "Terminate"  # PutFunctionRecursionConfig's default


class FakeService:
    region = "us-east-1"
    account = "000000000000"

    def __init__(self, *names: str) -> None:
        self.registry = {n: _Rec(n) for n in names}

    def arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def resolve(self, ref: str, qualifier: str | None = None):
        if ref not in self.registry:
            raise LambdaError("ResourceNotFoundException", f"Function not found: {self.arn(ref)}")
        return self.registry[ref]
