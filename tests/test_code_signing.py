"""Code signing end to end: signing profiles made with `lambdalet
signing-profile create`, packages signed with `lambdalet sign`, and code
signing configs that Lambda's API enforces on every upload, with AWS's
errors for each refusal."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest
from botocore.exceptions import ClientError
from helpers import lambdalet_argv, make_zip, wait_for

from lambdalet.gateway.functions import signatures

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
ACCOUNT = "000000000000"


def source(says: str) -> bytes:
    return make_zip({"app.py": f"def handler(e, c):\n    return {says!r}\n"})


@pytest.fixture(scope="module")
def cli(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("xdg")
    base = lambdalet_argv("--endpoint", server.url, "--data-dir", str(server.data_dir))

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "XDG_CONFIG_HOME": str(home)})
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    run.home = home
    return run


@pytest.fixture(scope="module")
def profiles(cli):
    out = {}
    for name, algorithm in (("alice", "ed25519"), ("mallory", "ed25519"), ("erin", "ecdsa-p384")):
        made = cli("signing-profile", "create", name, "--algorithm", algorithm)
        out[name] = made.stdout.splitlines()[0]
        assert out[name].startswith(f"arn:aws:signer:us-east-1:{ACCOUNT}:/signing-profiles/{name}/")
    return out


def signed(cli, tmp_path, profile: str, package: bytes) -> bytes:
    unsigned = tmp_path / f"pkg-{profile}.zip"
    unsigned.write_bytes(package)
    out = cli("sign", str(unsigned), "--profile", profile).stdout.strip()
    return pathlib.Path(out).read_bytes()


def refusal(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_the_code_signing_flow(server, lam, cli, profiles, tmp_path, fn_name):
    config = lam.create_code_signing_config(
        Description="trusted",
        AllowedPublishers={"SigningProfileVersionArns": [profiles["alice"], profiles["erin"]]},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"},
    )["CodeSigningConfig"]
    arn = config["CodeSigningConfigArn"]
    assert arn == f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:{config['CodeSigningConfigId']}"
    assert set(config) == {
        "CodeSigningConfigId",
        "CodeSigningConfigArn",
        "Description",
        "AllowedPublishers",
        "CodeSigningPolicies",
        "LastModified",
    }
    create = dict(FunctionName=fn_name, Runtime=PY, Role=ROLE, Handler="app.handler", CodeSigningConfigArn=arn)
    cannot = (
        "CodeVerificationFailedException",
        "Lambda cannot deploy the function. The function or layer might be signed using a signature "
        f"that the client is not configured to accept. Check the provided signature for {fn_name}.",
    )

    # Enforce: unsigned code is refused, and nothing is created.
    assert refusal(lambda: lam.create_function(Code={"ZipFile": source("unsigned")}, **create)) == cannot
    assert refusal(lambda: lam.get_function(FunctionName=fn_name))[0] == "ResourceNotFoundException"

    # Signed by an allowed profile: deployed, and the configuration says who signed.
    conf = lam.create_function(Code={"ZipFile": signed(cli, tmp_path, "alice", source("alice"))}, **create)
    assert conf["SigningProfileVersionArn"] == profiles["alice"]
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name)
    assert json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read()) == "alice"
    assert lam.get_function_code_signing_config(FunctionName=fn_name)["CodeSigningConfigArn"] == arn
    assert lam.list_functions_by_code_signing_config(CodeSigningConfigArn=arn)["FunctionArns"] == [
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{fn_name}"
    ]

    # Signed by a profile the config does not allow: refused (mismatch).
    assert (
        refusal(lambda: lam.update_function_code(FunctionName=fn_name, ZipFile=signed(cli, tmp_path, "mallory", source("mallory"))))
        == cannot
    )
    # Another package under alice's signature: the integrity check fails,
    # InvalidCodeSignatureException, whatever the policy.
    grafted = source("tampered")
    replayed = signed(cli, tmp_path, "alice", source("alice"))
    comment = zipfile.ZipFile(io.BytesIO(replayed)).comment
    forged = signatures.unsigned(grafted)[:-2] + len(comment).to_bytes(2, "little") + comment
    assert refusal(lambda: lam.update_function_code(FunctionName=fn_name, ZipFile=forged))[0] == "InvalidCodeSignatureException"
    # An ECDSA profile works as well.
    lam.update_function_code(FunctionName=fn_name, ZipFile=signed(cli, tmp_path, "erin", source("erin")))
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name)
    assert json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read()) == "erin"

    # Warn: untrusted code is deployed, and the server says so in its log.
    lam.update_code_signing_config(CodeSigningConfigArn=arn, CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Warn"})
    lam.update_function_code(FunctionName=fn_name, ZipFile=source("warned"))
    wait_for(
        lambda: any(
            f"code signing: function {fn_name}: deployed under Warn although the package is not signed" in line for line in server.output
        )
    )
    assert "SigningProfileVersionArn" not in lam.get_function_configuration(FunctionName=fn_name)
    assert refusal(lambda: lam.update_function_code(FunctionName=fn_name, ZipFile=forged))[0] == "InvalidCodeSignatureException"

    # Revoked: alice's signatures no longer pass under Enforce.
    lam.update_code_signing_config(CodeSigningConfigArn=arn, CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"})
    cli("signing-profile", "revoke", "alice")
    assert (
        refusal(lambda: lam.update_function_code(FunctionName=fn_name, ZipFile=signed(cli, tmp_path, "alice", source("alice again"))))
        == cannot
    )
    listed = json.loads(cli("signing-profile", "ls", "--json").stdout)
    assert {p["ProfileVersionArn"]: p["Status"] for p in listed}[profiles["alice"]] == "Revoked"

    # A config in use cannot be deleted; detached, it can.
    assert refusal(lambda: lam.delete_code_signing_config(CodeSigningConfigArn=arn))[0] == "ResourceConflictException"
    lam.delete_function_code_signing_config(FunctionName=fn_name)
    assert lam.get_function_code_signing_config(FunctionName=fn_name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    lam.update_function_code(FunctionName=fn_name, ZipFile=source("free again"))
    lam.delete_code_signing_config(CodeSigningConfigArn=arn)
    assert refusal(lambda: lam.get_code_signing_config(CodeSigningConfigArn=arn)) == (
        "ResourceNotFoundException",
        f"The Lambda code signing configuration {arn} can not be found.",
    )
    lam.delete_function(FunctionName=fn_name)


def test_code_signing_config_answers(lam, fn_name):
    unknown = f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:csc-0123456789abcdefg"
    gone = ("ResourceNotFoundException", f"The Lambda code signing configuration {unknown} can not be found.")
    assert refusal(lambda: lam.get_code_signing_config(CodeSigningConfigArn=unknown)) == gone
    assert refusal(lambda: lam.update_code_signing_config(CodeSigningConfigArn=unknown, Description="x")) == gone
    assert refusal(lambda: lam.delete_code_signing_config(CodeSigningConfigArn=unknown)) == gone
    assert refusal(lambda: lam.list_functions_by_code_signing_config(CodeSigningConfigArn=unknown)) == gone
    # AWS looks for the config before the function.
    assert refusal(lambda: lam.put_function_code_signing_config(FunctionName="contract-nobody", CodeSigningConfigArn=unknown)) == (
        "CodeSigningConfigNotFoundException",
        f"The code signing configuration cannot be found. Check that the provided configuration is not deleted: {unknown}.",
    )
    made = lam.create_code_signing_config(
        AllowedPublishers={"SigningProfileVersionArns": [f"arn:aws:signer:us-east-1:{ACCOUNT}:/signing-profiles/x"]}, Tags={"team": "edge"}
    )["CodeSigningConfig"]
    assert made["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}  # AWS's default
    arn = made["CodeSigningConfigArn"]
    assert refusal(lambda: lam.put_function_code_signing_config(FunctionName="contract-nobody", CodeSigningConfigArn=arn)) == (
        "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:us-east-1:{ACCOUNT}:function:contract-nobody",
    )
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "edge"}
    lam.tag_resource(Resource=arn, Tags={"tier": "1"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "edge", "tier": "1"}
    assert arn in [c["CodeSigningConfigArn"] for c in lam.list_code_signing_configs()["CodeSigningConfigs"]]
    # An update that changes nothing answers the config as it is.
    assert lam.update_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"]["LastModified"] == made["LastModified"]
    lam.delete_code_signing_config(CodeSigningConfigArn=arn)


def test_signatures_bind_package_profile_and_time():
    key = signatures.generate(signatures.ED25519)
    pem = signatures.public_pem(key)
    package = make_zip({"a.py": "x = 1\n"})
    out = signatures.sign(package, key, "arn:aws:signer:us-east-1:000000000000:/signing-profiles/p/abc", now=1_700_000_000)
    sig = signatures.read(out)
    assert sig is not None and sig.signed_at == 1_700_000_000
    assert signatures.unsigned(out) == package and zipfile.ZipFile(io.BytesIO(out)).read("a.py") == b"x = 1\n"
    assert signatures.intact(out, sig, pem)
    # Re-signing replaces the signature; a changed field breaks it.
    assert signatures.read(signatures.sign(out, key, sig.profile)).profile == sig.profile
    forged = signatures.Signature(
        profile=sig.profile.replace("/p/", "/q/"),
        algorithm=sig.algorithm,
        signed_at=sig.signed_at,
        sha256=sig.sha256,
        signature=sig.signature,
    )
    assert not signatures.intact(out, forged, pem)
    assert not signatures.intact(out, sig, signatures.public_pem(signatures.generate(signatures.ED25519)))
    assert signatures.read(package) is None


def test_layers_pass_the_functions_config_too(server, lam, cli, profiles, tmp_path, fn_name):
    """AWS checks the layer versions a function under a code signing config
    is given as it checks the function's own code ("The function or layer
    might be signed ..."), naming the layer version that failed. (erin
    signs here: the flow above revokes alice.)"""
    config = lam.create_code_signing_config(
        AllowedPublishers={"SigningProfileVersionArns": [profiles["erin"]]},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"},
    )["CodeSigningConfig"]["CodeSigningConfigArn"]
    layer_zip = make_zip({"python/helper.py": "X = 1\n"})

    def layer(name: str, package: bytes) -> str:
        return lam.publish_layer_version(LayerName=name, Content={"ZipFile": package})["LayerVersionArn"]

    unsigned_layer = layer(f"{fn_name}-unsigned", layer_zip)
    mallorys = layer(f"{fn_name}-mallory", signed(cli, tmp_path, "mallory", layer_zip))
    erins = layer(f"{fn_name}-erin", signed(cli, tmp_path, "erin", layer_zip))
    genuine = signed(cli, tmp_path, "erin", layer_zip)
    comment = zipfile.ZipFile(io.BytesIO(genuine)).comment
    other = make_zip({"python/helper.py": "X = 2\n"})
    forged = layer(f"{fn_name}-forged", signatures.unsigned(other)[:-2] + len(comment).to_bytes(2, "little") + comment)

    def cannot(arn: str) -> tuple[str, str]:
        return (
            "CodeVerificationFailedException",
            "Lambda cannot deploy the function. The function or layer might be signed using a signature "
            f"that the client is not configured to accept. Check the provided signature for {arn}.",
        )

    create = dict(
        FunctionName=fn_name,
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        CodeSigningConfigArn=config,
        Code={"ZipFile": signed(cli, tmp_path, "erin", source("erin"))},
    )
    assert refusal(lambda: lam.create_function(Layers=[erins, unsigned_layer], **create)) == cannot(unsigned_layer)
    assert refusal(lambda: lam.get_function(FunctionName=fn_name))[0] == "ResourceNotFoundException"
    lam.create_function(Layers=[erins], **create)
    try:
        lam.get_waiter("function_active_v2").wait(FunctionName=fn_name)
        assert refusal(lambda: lam.update_function_configuration(FunctionName=fn_name, Layers=[mallorys])) == cannot(mallorys)
        code, message = refusal(lambda: lam.update_function_configuration(FunctionName=fn_name, Layers=[forged]))
        assert code == "InvalidCodeSignatureException" and forged in message
        assert [entry["Arn"] for entry in lam.get_function_configuration(FunctionName=fn_name)["Layers"]] == [erins]
        # Warn: the layer is taken, and the log names it.
        lam.update_code_signing_config(CodeSigningConfigArn=config, CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Warn"})
        lam.update_function_configuration(FunctionName=fn_name, Layers=[unsigned_layer])
        wait_for(
            lambda: any(
                f"code signing: function {fn_name}: layer {unsigned_layer} deployed under Warn although the package is not signed" in line
                for line in server.output
            )
        )
    finally:
        lam.delete_function(FunctionName=fn_name)
        lam.delete_code_signing_config(CodeSigningConfigArn=config)
