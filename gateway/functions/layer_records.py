"""A layer version as stored, and a layer version as a function names it.
Pure data: the function model and storage read these without the layer
service."""

from __future__ import annotations

import msgspec


class LayerVersionRecord(msgspec.Struct, kw_only=True):
    name: str
    version: int
    description: str = ""
    created_date: str
    compatible_runtimes: list[str] = []
    compatible_architectures: list[str] = []
    license_info: str | None = None
    code_sha256_hex: str
    code_sha256_b64: str
    code_size: int
    unzipped_size: int
    statements: list[dict] = []  # AddLayerVersionPermission's, in order
    policy_revision: str = ""


class LayerRef(msgspec.Struct, frozen=True):
    """A layer version as a function names it: the ARN it was given and,
    fixed at that moment, the content it mounts (a deleted version keeps
    working for the functions that had it)."""

    arn: str
    code_size: int
    sha256_hex: str
    unzipped_size: int
