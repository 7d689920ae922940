"""Code signing, for real: signing profiles (public keys an operator trusts),
code signing configs (which profiles a function accepts, and what happens
to code that fails), and the check every upload to such a function passes.

What Lambda checks on a deployment (AWS's documentation), and what follows:
- integrity: the package is what its signer signed. A failure is
  InvalidCodeSignatureException, whatever the policy (AWS blocks it even
  under Warn);
- expiry: the signature is younger than its profile's signature validity
  period (AWS Signer's default, 135 months, unless the profile says less);
- mismatch and revocation: the signer is one of the config's allowed
  profiles and has not been revoked; an unsigned package fails here too.
  Under Enforce that is CodeVerificationFailedException; under Warn the
  code is deployed and the server logs a warning.
Signatures and keys are signatures.py's. Configs and profiles are kept in
lambdalet.db's settings table; functions name their config on their record.
"""

from __future__ import annotations

import base64
import datetime
import re
import secrets
import string
import time
from collections.abc import Callable

import msgspec
import trio

from ..errors import LambdaError, invalid, not_found
from . import constraints, signatures
from .model import FunctionRecord
from .service import FunctionService
from .storage import Storage

_CONFIG = "code-signing-config:"
_PROFILE = "signing-profile:"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_PROFILE_NAME = re.compile(r"^[a-zA-Z0-9_]{2,64}$")  # as AWS Signer's
# AWS Signer's default signature validity period, 135 months, in days.
VALIDITY_DAYS = 4110


def _now() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


class CodeSigning:
    def __init__(self, storage: Storage, *, region: str, account: str, warn: Callable[[str], None] = lambda message: None) -> None:
        self.storage = storage
        self.region = region
        self.account = account
        self._warn = warn
        dec = msgspec.json.Decoder(dict)
        self.configs: dict[str, dict] = {k[len(_CONFIG) :]: dec.decode(v) for k, v in storage.load_settings(_CONFIG).items()}
        self.profiles: dict[str, dict] = {k[len(_PROFILE) :]: dec.decode(v) for k, v in storage.load_settings(_PROFILE).items()}
        self._db = trio.CapacityLimiter(1)

    # -- signing profiles (Lambdalet's stand-in for AWS Signer) ---------------

    def profile_arn(self, name: str) -> str:
        return f"arn:aws:signer:{self.region}:{self.account}:/signing-profiles/{name}"

    async def put_profile(self, name: str, body: dict) -> dict:
        """Trusts a public key as a version of the profile `name`."""
        if not _PROFILE_NAME.match(name):
            raise invalid(f"Signing profile names are 2 to 64 letters, digits or underscores: {name!r}")
        pem = body.get("PublicKey")
        if not isinstance(pem, str):
            raise invalid("PublicKey (a PEM public key) is required")
        try:
            algorithm = signatures.algorithm_of(pem)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        days = body.get("SignatureValidityDays", VALIDITY_DAYS)
        if type(days) is not int or not 1 <= days <= VALIDITY_DAYS:
            raise invalid(f"SignatureValidityDays must be a whole number of days from 1 to {VALIDITY_DAYS} (135 months, AWS Signer's most)")
        version_arn = f"{self.profile_arn(name)}/{signatures.profile_version(pem)}"
        profile = self.profiles.get(version_arn) or {
            "ProfileName": name,
            "ProfileVersion": signatures.profile_version(pem),
            "ProfileVersionArn": version_arn,
            "Algorithm": algorithm,
            "PublicKey": pem,
            "Status": "Active",
            "Created": _now(),
            "SignatureValidityDays": days,
        }
        await self._put(_PROFILE + version_arn, profile)
        self.profiles[version_arn] = profile
        return _public(profile)

    def list_profiles(self) -> dict:
        return {"Profiles": [_public(p) for _, p in sorted(self.profiles.items())]}

    async def revoke_profile(self, name_or_arn: str) -> dict:
        """Revokes every version of a profile (by name), or one version (by
        its ARN): code it signs no longer passes the revocation check."""
        matched = [a for a, p in self.profiles.items() if name_or_arn in (a, p["ProfileName"])]
        if not matched:
            raise LambdaError("ResourceNotFoundException", f"No signing profile {name_or_arn}")
        for arn in matched:
            profile = {**self.profiles[arn], "Status": "Revoked"}
            await self._put(_PROFILE + arn, profile)
            self.profiles[arn] = profile
        return {"Profiles": [_public(self.profiles[a]) for a in matched]}

    # -- code signing configs ---------------------------------------------------

    def arn(self, config_id: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:code-signing-config:{config_id}"

    def _id_of(self, arn: str) -> str:
        config_id = arn.rsplit(":", 1)[-1]
        if arn != self.arn(config_id) or config_id not in self.configs:
            raise LambdaError("ResourceNotFoundException", f"The Lambda code signing configuration {arn} can not be found.")
        return config_id

    def get(self, arn: str) -> dict:
        return {"CodeSigningConfig": _config_doc(self.configs[self._id_of(arn)])}

    def exists(self, arn: str) -> bool:
        return arn.rsplit(":", 1)[-1] in self.configs and arn == self.arn(arn.rsplit(":", 1)[-1])

    def must_exist(self, arn: str) -> None:
        """For PutFunctionCodeSigningConfig and CreateFunction: AWS's own
        error for a config that does not exist."""
        if not self.exists(arn):
            raise LambdaError(
                "CodeSigningConfigNotFoundException",
                f"The code signing configuration cannot be found. Check that the provided configuration is not deleted: {arn}.",
            )

    async def create(self, body: dict) -> dict:
        constraints.check_input("CreateCodeSigningConfig", body)
        config_id = "csc-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(17))
        config = {
            "CodeSigningConfigId": config_id,
            "CodeSigningConfigArn": self.arn(config_id),
            "Description": body.get("Description", ""),
            "AllowedPublishers": {"SigningProfileVersionArns": list(body["AllowedPublishers"]["SigningProfileVersionArns"])},
            "CodeSigningPolicies": {
                "UntrustedArtifactOnDeployment": (body.get("CodeSigningPolicies") or {}).get("UntrustedArtifactOnDeployment", "Warn")
            },
            "LastModified": _now(),
            "Tags": dict(body.get("Tags") or {}),
        }
        await self._save(config)
        return {"CodeSigningConfig": _config_doc(config)}

    async def update(self, arn: str, body: dict) -> dict:
        constraints.check_input("UpdateCodeSigningConfig", body, CodeSigningConfigArn=arn)
        config = dict(self.configs[self._id_of(arn)])
        changed = False
        if "Description" in body:
            config["Description"], changed = body["Description"], True
        if "AllowedPublishers" in body:
            config["AllowedPublishers"], changed = (
                {"SigningProfileVersionArns": list(body["AllowedPublishers"]["SigningProfileVersionArns"])},
                True,
            )
        if (body.get("CodeSigningPolicies") or {}).get("UntrustedArtifactOnDeployment") is not None:
            config["CodeSigningPolicies"] = {"UntrustedArtifactOnDeployment": body["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"]}
            changed = True
        if changed:
            config["LastModified"] = _now()
            await self._save(config)
        return {"CodeSigningConfig": _config_doc(config)}

    async def delete(self, arn: str, users: list[str]) -> None:
        config_id = self._id_of(arn)
        if users:
            raise LambdaError(
                "ResourceConflictException",
                f"The code signing configuration {arn} cannot be deleted: functions use it ({', '.join(users)}).",
            )
        async with self._db:
            await trio.to_thread.run_sync(self.storage.delete_setting, _CONFIG + config_id)
        self.configs.pop(config_id, None)

    def list(self, marker: str | None, max_items: int | None) -> dict:
        ids = sorted(self.configs)
        start = _from_marker(marker)
        limit = max_items or 50
        out: dict = {"CodeSigningConfigs": [_config_doc(self.configs[i]) for i in ids[start : start + limit]]}
        if start + limit < len(ids):
            out["NextMarker"] = _marker(start + limit)
        return out

    # tags of a config (TagResource & co. name it by its ARN)
    def tags(self, arn: str) -> dict[str, str]:
        return dict(self.configs[self._id_of(arn)].get("Tags", {}))

    async def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        config = {**self.configs[self._id_of(arn)], "Tags": dict(tags)}
        await self._save(config)

    # -- the check of an upload -----------------------------------------------

    def check(self, function: str, config_arn: str, package: bytes, *, layer: str | None = None, now: float | None = None) -> str | None:
        """Passes or refuses a package deployed to a function whose code
        signing config is config_arn (or, with layer, the ARN of a layer
        version the function is given: AWS checks layers as it checks the
        function's own code); the profile version that signed it when it
        passed every check."""
        what = layer or function
        config = self.configs.get(config_arn.rsplit(":", 1)[-1])
        if config is None:
            raise LambdaError(
                "CodeSigningConfigNotFoundException",
                f"The code signing configuration cannot be found. Check that the provided configuration is not deleted: {config_arn}.",
            )
        try:
            signature = signatures.read(package)
        except signatures.SignatureError:
            raise _integrity_failure(what) from None
        profile = self.profiles.get(signature.profile) if signature is not None else None
        if signature is not None and profile is not None and not signatures.intact(package, signature, profile["PublicKey"]):
            raise _integrity_failure(what)
        if signature is None:
            why = "the package is not signed"
        elif profile is None:
            why = f"it is signed by {signature.profile}, a signing profile this server does not know"
        elif _expired(signature, profile, now):
            why = f"its signature by {signature.profile} expired (signed {_date(signature.signed_at)}, valid {_validity(profile)} days)"
        elif not _allowed(signature.profile, config["AllowedPublishers"]["SigningProfileVersionArns"]):
            why = f"its signing profile {signature.profile} is not one of the config's allowed publishers"
        elif profile["Status"] != "Active":
            why = f"its signing profile {signature.profile} has been revoked"
        else:
            return signature.profile
        if config["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] == "Enforce":
            raise LambdaError(
                "CodeVerificationFailedException",
                "Lambda cannot deploy the function. The function or layer might be signed using a signature that the client "
                f"is not configured to accept. Check the provided signature for {what}.",
            )
        on = f"layer {layer} " if layer else ""
        self._warn(f"code signing: function {function}: {on}deployed under Warn although {why} ({config['CodeSigningConfigArn']})")
        return None

    # -- helpers ------------------------------------------------------------

    async def _save(self, config: dict) -> None:
        await self._put(_CONFIG + config["CodeSigningConfigId"], config)
        self.configs[config["CodeSigningConfigId"]] = config

    async def _put(self, key: str, doc: dict) -> None:
        async with self._db:
            await trio.to_thread.run_sync(self.storage.put_setting, key, msgspec.json.encode(doc).decode())


def _allowed(version_arn: str, allowed: list[str]) -> bool:
    # A profile's ARN (without a version) allows each of its versions.
    return version_arn in allowed or version_arn.rsplit("/", 1)[0] in allowed


def _validity(profile: dict) -> int:
    return profile.get("SignatureValidityDays", VALIDITY_DAYS)


def _expired(signature: signatures.Signature, profile: dict, now: float | None) -> bool:
    return signature.signed_at + _validity(profile) * 86400 < (time.time() if now is None else now)


def _date(unix: int) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _integrity_failure(function: str) -> LambdaError:
    return LambdaError(
        "InvalidCodeSignatureException",
        f"The code signature failed the integrity check: the package deployed to {function} is not what its signer signed. "
        "Lambda blocks the deployment whatever the code signing policy.",
    )


def _config_doc(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "Tags"}


def _public(profile: dict) -> dict:
    return dict(profile)


def _marker(n: int) -> str:
    return base64.urlsafe_b64encode(str(n).encode()).decode()


def _from_marker(marker: str | None) -> int:
    if not marker:
        return 0
    try:
        return int(base64.urlsafe_b64decode(marker.encode()).decode())
    except ValueError:
        raise invalid("Invalid marker.") from None


class FunctionCodeSigning:
    """Put/Get/DeleteFunctionCodeSigningConfig and
    ListFunctionsByCodeSigningConfig: which config a function follows."""

    def __init__(self, service: FunctionService, signing: CodeSigning) -> None:
        self.service = service
        self.signing = signing

    def _function(self, ref: str) -> FunctionRecord:
        name, qualifier = self.service.parse(ref)
        if qualifier is not None:
            raise invalid(
                "Code signing configurations apply to functions, not to versions or aliases. "
                "Please specify either a function name or an unqualified function ARN."
            )
        return self.service.latest(name)

    async def put(self, ref: str, body: dict) -> dict:
        constraints.check_input("PutFunctionCodeSigningConfig", body, FunctionName=ref)
        # AWS looks for the config before the function.
        self.signing.must_exist(body["CodeSigningConfigArn"])
        rec = self._function(ref)
        await self._set(rec, body["CodeSigningConfigArn"])
        return {"CodeSigningConfigArn": body["CodeSigningConfigArn"], "FunctionName": rec.name}

    def get(self, ref: str) -> dict:
        rec = self._function(ref)
        # AWS answers an empty 200 for a function with no config.
        return {"CodeSigningConfigArn": rec.code_signing_config_arn, "FunctionName": rec.name} if rec.code_signing_config_arn else {}

    async def delete(self, ref: str) -> None:
        rec = self._function(ref)
        if rec.code_signing_config_arn:
            await self._set(rec, None)

    def users(self, config_arn: str) -> list[str]:
        return sorted(r.name for r in self.service.registry.values() if r.code_signing_config_arn == config_arn)

    def list_functions(self, config_arn: str, marker: str | None, max_items: int | None) -> dict:
        self.signing.get(config_arn)  # AWS's not-found for an unknown config
        names = self.users(config_arn)
        start = _from_marker(marker)
        limit = max_items or 50
        out: dict = {"FunctionArns": [self.service.arn(n) for n in names[start : start + limit]]}
        if start + limit < len(names):
            out["NextMarker"] = _marker(start + limit)
        return out

    async def _set(self, rec: FunctionRecord, arn: str | None) -> None:
        async with self.service._lock:
            current = self.service.registry.get(rec.name)
            if current is None:
                raise not_found(self.service.arn(rec.name))
            await self.service.save_latest(msgspec.structs.replace(current, code_signing_config_arn=arn))
