"""The code-signing flow end to end from the `lambdalet` command alone: a
signing profile per signer (`signing-profile create`), a code signing
config that trusts some of them (`signing-config create --enforce`), a
signed package (`sign DIR`), a function deployed under the config
(`deploy --code-signing-config`). Then each way a package can fail the
config (AWS's integrity, expiry, mismatch and revocation checks), one test
or row each, as the CLI reports it (AWS's error code and message) while
the function keeps running the code it had.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import time
import zipfile

import pytest
from helpers import lambdalet_argv, make_zip, wait_for

from lambdalet.gateway.functions import signatures

ACCOUNT = "000000000000"


def _app(tmp: pathlib.Path, says: str) -> pathlib.Path:
    d = tmp / f"app-{says}"
    d.mkdir(exist_ok=True)
    (d / "app.py").write_text(f"def handler(e, c):\n    return {says!r}\n")
    return d


@pytest.fixture(scope="module")
def cli(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("xdg")
    base = lambdalet_argv("--endpoint", server.url, "--data-dir", str(server.data_dir))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "XDG_CONFIG_HOME": str(home)})

    def ok(*args: str) -> str:
        done = run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run.ok = ok
    run.home = home
    return run


@pytest.fixture(scope="module")
def flow(cli, lam, tmp_path_factory):
    """Profiles alice and erin (ECDSA) trusted by an Enforce config, mallory
    not; rita trusted, then revoked; a function signed by alice."""
    tmp = tmp_path_factory.mktemp("signing")
    for name, algorithm in (("alice", "ed25519"), ("erin", "ecdsa-p384"), ("mallory", "ed25519"), ("rita", "ed25519")):
        cli.ok("signing-profile", "create", name, "--algorithm", algorithm)
    cli.ok("signing-profile", "create", "brief", "--validity-days", "1")
    config = cli.ok(
        "signing-config",
        "create",
        "--allow",
        "alice",
        "--allow",
        "erin",
        "--allow",
        "rita",
        "--allow",
        "brief",
        "--enforce",
        "--description",
        "trusted",
    ).strip()
    assert config.startswith(f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:csc-")
    cli.ok("signing-profile", "revoke", "rita")
    name = "signed-by-cli"
    signed = cli.ok("sign", str(_app(tmp, "alice")), "--profile", "alice").strip()
    assert signed == str(tmp / "app-alice.signed.zip")
    out = cli.ok("deploy", signed, "--name", name, "--handler", "app.handler", "--code-signing-config", config)
    assert out.startswith(f"created {name} ")
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "alice"
    assert lam.get_function_code_signing_config(FunctionName=name)["CodeSigningConfigArn"] == config
    yield {"tmp": tmp, "config": config, "name": name}
    lam.delete_function(FunctionName=name)
    cli.ok("signing-config", "rm", config)


def unsigned(cli, tmp) -> str:
    path = tmp / "unsigned.zip"
    path.write_bytes(make_zip({"app.py": "def handler(e, c):\n    return 'unsigned'\n"}))
    return str(path)


def by(profile: str):
    def make(cli, tmp) -> str:
        return cli.ok("sign", str(_app(tmp, profile)), "--profile", profile, "-o", str(tmp / f"{profile}.zip")).strip()

    return make


def by_a_key_the_server_never_trusted(cli, tmp) -> str:
    """A key made on this machine whose profile the server was never told
    of (as if copied from another server's operator)."""
    keys = pathlib.Path(cli.home) / "lambdalet" / "signing-profiles"
    key = signatures.generate(signatures.ED25519)
    (keys / "ghost.pem").write_bytes(signatures.private_pem(key))
    (keys / "ghost.json").write_text(
        json.dumps(
            {"ProfileVersionArn": f"arn:aws:signer:us-east-1:{ACCOUNT}:/signing-profiles/ghost/0123456789", "Algorithm": signatures.ED25519}
        )
    )
    return by("ghost")(cli, tmp)


def tampered(cli, tmp) -> str:
    """alice's signature grafted onto another package."""
    genuine = pathlib.Path(by("alice")(cli, tmp)).read_bytes()
    comment = zipfile.ZipFile(io.BytesIO(genuine)).comment
    other = make_zip({"app.py": "def handler(e, c):\n    return 'tampered'\n"})
    path = tmp / "tampered.zip"
    path.write_bytes(other[:-2] + len(comment).to_bytes(2, "little") + comment)
    return str(path)


def cannot(name: str) -> tuple[str, str]:
    return (
        "CodeVerificationFailedException",
        "Lambda cannot deploy the function. The function or layer might be signed using a signature "
        f"that the client is not configured to accept. Check the provided signature for {name}.",
    )


REFUSALS = [
    pytest.param(unsigned, cannot, id="unsigned-under-enforce"),
    pytest.param(by("mallory"), cannot, id="signed-by-a-profile-the-config-does-not-allow"),
    pytest.param(by("rita"), cannot, id="signed-by-a-revoked-profile"),
    pytest.param(by_a_key_the_server_never_trusted, cannot, id="signed-by-a-profile-the-server-does-not-know"),
    pytest.param(
        tampered,
        lambda name: (
            "InvalidCodeSignatureException",
            f"The code signature failed the integrity check: the package deployed to {name} is not what its signer "
            "signed. Lambda blocks the deployment whatever the code signing policy.",
        ),
        id="integrity-check-fails",
    ),
]


@pytest.mark.parametrize("package,refusal", REFUSALS)
def test_each_refusal_as_the_cli_reports_it(cli, lam, flow, package, refusal):
    done = cli("deploy", package(cli, flow["tmp"]), "--name", flow["name"])
    code, message = refusal(flow["name"])
    assert (done.returncode, done.stderr) == (1, f"lambdalet: {code}: {message}\n")
    assert json.loads(lam.invoke(FunctionName=flow["name"])["Payload"].read()) == "alice"  # nothing was deployed


def test_an_expired_signature_is_refused(cli, lam, flow):
    """AWS's expiry check: a signature older than its profile's signature
    validity period fails as a mismatch does. brief's signatures last a
    day: a fresh one deploys, one made two days ago does not."""
    assert cli.ok("deploy", by("brief")(cli, flow["tmp"]), "--name", flow["name"]).startswith("updated ")
    assert json.loads(lam.invoke(FunctionName=flow["name"])["Payload"].read()) == "brief"
    keys = pathlib.Path(cli.home) / "lambdalet" / "signing-profiles"
    key = signatures.load_private((keys / "brief.pem").read_bytes())
    arn = json.loads((keys / "brief.json").read_text())["ProfileVersionArn"]
    old = flow["tmp"] / "expired.zip"
    old.write_bytes(
        signatures.sign(make_zip({"app.py": "def handler(e, c):\n    return 'expired'\n"}), key, arn, now=time.time() - 2 * 86400)
    )
    done = cli("deploy", str(old), "--name", flow["name"])
    code, message = cannot(flow["name"])
    assert (done.returncode, done.stderr) == (1, f"lambdalet: {code}: {message}\n")
    assert json.loads(lam.invoke(FunctionName=flow["name"])["Payload"].read()) == "brief"
    cli.ok("deploy", by("alice")(cli, flow["tmp"]), "--name", flow["name"])  # back to alice for the other rows


def test_a_config_that_does_not_exist_is_refused(cli, flow):
    missing = f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:csc-0123456789abcdefg"
    done = cli("deploy", by("alice")(cli, flow["tmp"]), "--name", "signed-nowhere", "--code-signing-config", missing)
    assert (done.returncode, done.stderr) == (
        1,
        "lambdalet: CodeSigningConfigNotFoundException: The code signing configuration cannot be found. "
        f"Check that the provided configuration is not deleted: {missing}.\n",
    )


def test_an_allowed_ecdsa_signature_deploys(cli, lam, flow):
    out = cli.ok("deploy", by("erin")(cli, flow["tmp"]), "--name", flow["name"])
    assert out.startswith(f"updated {flow['name']} ")
    assert json.loads(lam.invoke(FunctionName=flow["name"])["Payload"].read()) == "erin"
    assert lam.get_function_configuration(FunctionName=flow["name"])["SigningProfileVersionArn"].startswith(
        f"arn:aws:signer:us-east-1:{ACCOUNT}:/signing-profiles/erin/"
    )
    cli.ok("deploy", by("alice")(cli, flow["tmp"]), "--name", flow["name"])  # back to alice for the other rows


def test_warn_deploys_untrusted_code_and_says_so(server, cli, lam, flow):
    warn = cli.ok("signing-config", "create", "--allow", "alice").strip()
    listed = json.loads(cli.ok("signing-config", "ls", "--json"))
    assert {c["CodeSigningConfigArn"]: c["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] for c in listed}[warn] == "Warn"
    name = "signed-warned"
    cli.ok("deploy", unsigned(cli, flow["tmp"]), "--name", name, "--handler", "app.handler", "--code-signing-config", warn)
    try:
        assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "unsigned"
        wait_for(
            lambda: any(
                f"code signing: function {name}: deployed under Warn although the package is not signed" in line for line in server.output
            )
        )
        # A config in use cannot be removed.
        done = cli("signing-config", "rm", warn)
        assert done.returncode == 1 and done.stderr.startswith("lambdalet: ResourceConflictException: ")
    finally:
        lam.delete_function(FunctionName=name)
    cli.ok("signing-config", "rm", warn)
    assert warn not in cli.ok("signing-config", "ls")


def test_signing_config_create_names_only_profiles_the_server_has(cli):
    done = cli("signing-config", "create", "--allow", "nobody-here")
    assert (done.returncode, done.stderr) == (
        1,
        "lambdalet: no active signing profile nobody-here on the server: create it with `lambdalet signing-profile create nobody-here`\n",
    )
