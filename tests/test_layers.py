"""Layers through the real server: the nine layer operations with boto3 and
the aws CLI, a function's Layers merged read-only at /opt in order, each
runtime's search paths (Python, Node.js, a custom runtime's PATH and
/opt/bootstrap), the 250 MB limit shared with the code, and the content
kept once by sha256 and collected when nothing names it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import requests
from botocore.exceptions import ClientError
from helpers import ServerProcess, make_zip, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ACCOUNT = "000000000000"  # the server's default account


def code_of(resp) -> str:
    return resp["Error"]["Code"]


def refused(call, code: str, *words: str) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    err = exc.value.response
    assert code_of(err) == code, err
    for word in words:
        assert word in err["Error"]["Message"], err["Error"]["Message"]
    return err["Error"]["Message"]


def publish(lam, name: str, files: dict, modes: dict | None = None, **kwargs) -> dict:
    return lam.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip(files, modes)}, **kwargs)


def create(
    lam, name: str, files: dict, layers: list[str], runtime: str = PY, handler: str = "app.handler", modes: dict | None = None
) -> None:
    lam.create_function(
        FunctionName=name, Role=ROLE, Runtime=runtime, Handler=handler, Code={"ZipFile": make_zip(files, modes)}, Layers=layers
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def call(lam, name: str, payload: dict | None = None, **kwargs):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kwargs)
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


# -- the layer operations ---------------------------------------------------


def test_publish_get_list_and_delete_layer_versions(lam, fn_name):
    name = f"lib-{fn_name}"[:60]
    content = make_zip({"python/mylib.py": "X = 1\n"})
    v1 = lam.publish_layer_version(
        LayerName=name,
        Description="first",
        Content={"ZipFile": content},
        CompatibleRuntimes=[PY, "nodejs20.x"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
    )
    assert v1["Version"] == 1
    assert v1["LayerArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}"
    assert v1["LayerVersionArn"] == f"{v1['LayerArn']}:1"
    assert v1["Content"]["CodeSha256"] == base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert v1["Content"]["CodeSize"] == len(content)
    assert v1["Description"] == "first" and v1["LicenseInfo"] == "MIT"
    assert v1["CompatibleRuntimes"] == [PY, "nodejs20.x"] and v1["CompatibleArchitectures"] == ["x86_64"]
    assert v1["CreatedDate"].endswith("+0000")
    # Content.Location downloads the zip itself.
    assert requests.get(v1["Content"]["Location"], timeout=10).content == content

    v2 = publish(lam, name, {"python/mylib.py": "X = 2\n"}, CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    assert v2["Version"] == 2
    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["LayerVersionArn"] == v1["LayerVersionArn"] and got["Description"] == "first"
    # LayerName may be the layer's ARN too.
    assert lam.get_layer_version(LayerName=v1["LayerArn"], VersionNumber=2)["Version"] == 2
    assert lam.get_layer_version_by_arn(Arn=v2["LayerVersionArn"])["Version"] == 2

    # Newest first; filters pick the versions that declare the runtime or architecture.
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]] == [2, 1]
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name, CompatibleRuntime=PY)["LayerVersions"]] == [1]
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name, CompatibleArchitecture="arm64")["LayerVersions"]] == [2]
    pages = list(lam.get_paginator("list_layer_versions").paginate(LayerName=name, PaginationConfig={"PageSize": 1}))
    assert [v["Version"] for p in pages for v in p["LayerVersions"]] == [2, 1] and len(pages) == 2

    layers = {entry["LayerName"]: entry for p in lam.get_paginator("list_layers").paginate() for entry in p["Layers"]}
    assert layers[name]["LayerArn"] == v1["LayerArn"] and layers[name]["LatestMatchingVersion"]["Version"] == 2
    by_runtime = {e["LayerName"]: e for e in lam.list_layers(CompatibleRuntime=PY)["Layers"]}
    assert by_runtime[name]["LatestMatchingVersion"]["Version"] == 1
    assert name not in {e["LayerName"] for e in lam.list_layers(CompatibleRuntime="java17")["Layers"]}

    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    refused(
        lambda: lam.get_layer_version(LayerName=name, VersionNumber=2),
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
    )
    lam.delete_layer_version(LayerName=name, VersionNumber=2)  # again: idempotent, as on AWS
    # Numbers are never reused.
    assert publish(lam, name, {"python/mylib.py": "X = 3\n"})["Version"] == 3
    lam.delete_layer_version(LayerName=name, VersionNumber=1)
    lam.delete_layer_version(LayerName=name, VersionNumber=3)
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []
    assert name not in {e["LayerName"] for p in lam.get_paginator("list_layers").paginate() for e in p["Layers"]}
    assert publish(lam, name, {"python/mylib.py": "X = 4\n"})["Version"] == 4
    lam.delete_layer_version(LayerName=name, VersionNumber=4)


def test_bad_layer_requests_get_lambdas_errors(lam, fn_name):
    name = f"bad-{fn_name}"[:60]
    ok = {"ZipFile": make_zip({"a.txt": "a"})}
    refused(lambda: lam.publish_layer_version(LayerName="has space", Content=ok), "ValidationException", "layerName")
    refused(
        lambda: lam.publish_layer_version(LayerName=name, Content=ok, CompatibleRuntimes=["cobol9"]),
        "InvalidParameterValueException",
        "compatibleRuntimes",
    )
    refused(lambda: lam.publish_layer_version(LayerName=name, Content=ok, CompatibleRuntimes=[PY] * 16), "ValidationException", "15")
    refused(
        lambda: lam.publish_layer_version(LayerName=name, Content=ok, CompatibleArchitectures=["sparc"]),
        "ValidationException",
        "compatibleArchitectures",
    )
    refused(
        lambda: lam.publish_layer_version(LayerName=name, Content={"S3Bucket": "bucket", "S3Key": "key.zip"}),
        "InvalidParameterValueException",
        "ZipFile",
    )
    refused(
        lambda: lam.publish_layer_version(LayerName=name, Content={"ZipFile": b"not a zip"}),
        "InvalidParameterValueException",
        "Could not unzip",
    )
    refused(
        lambda: lam.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"../escape": "x"})}),
        "InvalidParameterValueException",
        "leaves",
    )
    refused(lambda: lam.publish_layer_version(LayerName=name, Content=ok, Description="d" * 257), "ValidationException", "description")
    # Nothing of the refusals was published.
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []
    refused(lambda: lam.get_layer_version(LayerName=name, VersionNumber=1), "ResourceNotFoundException")
    refused(lambda: lam.get_layer_version_by_arn(Arn="arn:aws:lambda:us-east-1:123:layer:x:1"), "ValidationException", "arn")
    refused(lambda: lam.get_layer_version_by_arn(Arn=f"arn:aws:lambda:us-east-1:111122223333:layer:{name}:1"), "ResourceNotFoundException")
    refused(
        lambda: lam.get_layer_version(LayerName=f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:{name}", VersionNumber=1),
        "ResourceNotFoundException",
    )
    refused(lambda: lam.list_layers(CompatibleRuntime="cobol9"), "InvalidParameterValueException", "compatibleRuntime")
    refused(
        lambda: lam.list_layer_versions(LayerName=name, CompatibleArchitecture="sparc"), "ValidationException", "compatibleArchitecture"
    )


def test_layer_version_permissions(lam, fn_name):
    name = f"perm-{fn_name}"[:60]
    publish(lam, name, {"a.txt": "a"})
    refused(
        lambda: lam.get_layer_version_policy(LayerName=name, VersionNumber=1),
        "ResourceNotFoundException",
        "No policy is associated with the given resource.",
    )
    one = lam.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="acct", Action="lambda:GetLayerVersion", Principal="210987654321"
    )
    statement = json.loads(one["Statement"])
    assert statement == {
        "Sid": "acct",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
        "Action": "lambda:GetLayerVersion",
        "Resource": f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}:1",
    }
    org = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="org",
        RevisionId=one["RevisionId"],
        Action="lambda:GetLayerVersion",
        Principal="*",
        OrganizationId="o-abcdefghij",
    )
    assert json.loads(org["Statement"])["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    refused(
        lambda: lam.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="acct", Action="lambda:GetLayerVersion", Principal="*"
        ),
        "ResourceConflictException",
        "already exists",
    )
    refused(
        lambda: lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=1,
            StatementId="late",
            RevisionId=one["RevisionId"],
            Action="lambda:GetLayerVersion",
            Principal="*",
        ),
        "PreconditionFailedException",
    )
    refused(
        lambda: lam.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="x", Action="lambda:InvokeFunction", Principal="*"
        ),
        "ValidationException",
        "action",
    )
    refused(
        lambda: lam.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="x", Action="lambda:GetLayerVersion", Principal="someone"
        ),
        "ValidationException",
        "principal",
    )
    refused(
        lambda: lam.add_layer_version_permission(
            LayerName=name, VersionNumber=9, StatementId="x", Action="lambda:GetLayerVersion", Principal="*"
        ),
        "ResourceNotFoundException",
    )
    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == org["RevisionId"]
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17" and [s["Sid"] for s in doc["Statement"]] == ["acct", "org"]
    refused(
        lambda: lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="acct", RevisionId="stale"),
        "PreconditionFailedException",
    )
    lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="acct")
    refused(
        lambda: lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="acct"),
        "ResourceNotFoundException",
        "Statement acct is not found",
    )
    assert [s["Sid"] for s in json.loads(lam.get_layer_version_policy(LayerName=name, VersionNumber=1)["Policy"])["Statement"]] == ["org"]
    lam.delete_layer_version(LayerName=name, VersionNumber=1)


# -- layers in a function -----------------------------------------------------

PY_PROBE = """
import json, os, subprocess, sys
import shared, only_in_first
def handler(event, context):
    try:
        open('/opt/python/new.txt', 'w')
        writable = True
    except OSError as exc:
        writable = exc.strerror
    return {
        'who': shared.WHO, 'first': only_in_first.FIRST, 'opt': sorted(os.listdir('/opt')),
        'tool': subprocess.run(['tool'], capture_output=True, text=True).stdout,
        'ld': os.environ.get('LD_LIBRARY_PATH', ''), 'path': os.environ['PATH'],
        'site': os.path.exists('/opt/python/lib/python%d.%d/site-packages/deep.py' % sys.version_info[:2]),
        'deep': __import__('deep').DEEP, 'writable': writable,
    }
"""


def test_layers_merge_at_opt_in_order_read_only_on_pythons_path(lam, fn_name):
    first = publish(
        lam,
        f"{fn_name}-a"[:60],
        {
            "python/shared.py": "WHO = 'first'\n",
            "python/only_in_first.py": "FIRST = True\n",
            f"python/lib/{PY}/site-packages/deep.py": "DEEP = 'site-packages'\n",
            "bin/tool": "#!/bin/sh\necho from-layer-bin\n",
        },
        {"bin/tool": 0o755},
    )
    second = publish(lam, f"{fn_name}-b"[:60], {"python/shared.py": "WHO = 'second'\n", "lib/libfake.so": "x"})
    create(lam, fn_name, {"app.py": PY_PROBE}, [first["LayerVersionArn"], second["LayerVersionArn"]])
    conf = lam.get_function_configuration(FunctionName=fn_name)
    assert conf["Layers"] == [
        {"Arn": first["LayerVersionArn"], "CodeSize": first["Content"]["CodeSize"]},
        {"Arn": second["LayerVersionArn"], "CodeSize": second["Content"]["CodeSize"]},
    ]
    out = call(lam, fn_name)
    assert out["who"] == "second"  # the later layer wins
    assert out["first"] is True and out["deep"] == "site-packages" and out["site"] is True
    assert out["opt"] == ["bin", "lib", "python"]
    assert out["tool"] == "from-layer-bin\n"
    assert "/opt/bin" in out["path"].split(":") and "/opt/lib" in out["ld"].split(":")
    assert out["writable"] == "Read-only file system"

    # The other order: the first layer's file now wins.
    lam.update_function_configuration(FunctionName=fn_name, Layers=[second["LayerVersionArn"], first["LayerVersionArn"]])
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert call(lam, fn_name)["who"] == "first"
    # A published version keeps its layers; $LATEST may drop them.
    v1 = lam.publish_version(FunctionName=fn_name)["Version"]
    lam.update_function_configuration(FunctionName=fn_name, Layers=[])
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert "Layers" not in lam.get_function_configuration(FunctionName=fn_name)
    assert len(lam.get_function_configuration(FunctionName=fn_name, Qualifier=v1)["Layers"]) == 2
    resp = lam.invoke(FunctionName=fn_name, Qualifier=v1, Payload=b"{}")
    assert json.loads(resp["Payload"].read())["who"] == "first"
    resp = lam.invoke(FunctionName=fn_name, Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    assert "No module named 'shared'" in json.loads(resp["Payload"].read())["errorMessage"]


def test_a_deleted_layer_version_keeps_working_for_functions_that_name_it(lam, fn_name):
    layer = publish(lam, f"{fn_name}-keep"[:60], {"python/shared.py": "WHO = 'kept'\n"})
    create(lam, fn_name, {"app.py": "import shared\ndef handler(e, c):\n    return shared.WHO\n"}, [layer["LayerVersionArn"]])
    lam.delete_layer_version(LayerName=f"{fn_name}-keep"[:60], VersionNumber=1)
    assert call(lam, fn_name) == "kept"
    # But no new function may name it.
    refused(
        lambda: create(lam, f"{fn_name}-new", {"app.py": "def handler(e, c):\n    return 1\n"}, [layer["LayerVersionArn"]]),
        "InvalidParameterValueException",
        f"Layer version {layer['LayerVersionArn']} does not exist.",
    )


def test_a_functions_layers_are_checked(lam, fn_name):
    arns = [publish(lam, f"{fn_name}-{i}"[:60], {f"f{i}.txt": "x"})["LayerVersionArn"] for i in range(6)]
    src = {"app.py": "def handler(e, c):\n    return 1\n"}
    refused(lambda: create(lam, fn_name, src, arns), "InvalidParameterValueException", "more than 5 layers")
    again = publish(lam, f"{fn_name}-0"[:60], {"f0.txt": "y"})["LayerVersionArn"]
    refused(
        lambda: create(lam, fn_name, src, [arns[0], again]),
        "InvalidParameterValueException",
        "Two different versions of the same layer are not allowed",
    )
    refused(lambda: create(lam, fn_name, src, [arns[0] + "9"]), "InvalidParameterValueException", "does not exist")
    refused(lambda: create(lam, fn_name, src, ["arn:aws:lambda:us-east-1:123:layer:x"]), "ValidationException", "regular expression")
    refused(
        lambda: create(lam, fn_name, src, ["arn:aws:lambda:us-east-1:111122223333:layer:x:1"]),
        "InvalidParameterValueException",
        "does not exist",
    )
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=fn_name)  # nothing was created
    create(lam, fn_name, src, arns[:5])
    refused(
        lambda: lam.update_function_configuration(FunctionName=fn_name, Layers=arns), "InvalidParameterValueException", "more than 5 layers"
    )
    assert len(lam.get_function_configuration(FunctionName=fn_name)["Layers"]) == 5


def _zero_zip(name: str, size: int) -> bytes:
    """A zip holding one file of size zero bytes: small to send, big unzipped."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
            f.write(bytes(size & ((1 << 20) - 1)))
    return buf.getvalue()


def test_code_and_layers_share_the_250_mb_unzipped_limit(lam, fn_name):
    big = lam.publish_layer_version(LayerName=f"{fn_name}-big"[:60], Content={"ZipFile": _zero_zip("data/zeros", 200 * 1024 * 1024)})
    small = {"app.py": "def handler(e, c):\n    return 1\n"}
    create(lam, fn_name, small, [big["LayerVersionArn"]])
    heavy = {"app.py": small["app.py"], "pad": "x"}
    pad = _zero_zip("pad", 70 * 1024 * 1024)
    message = refused(
        lambda: lam.update_function_code(FunctionName=fn_name, ZipFile=pad),
        "InvalidParameterValueException",
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes.",
    )
    assert f"The actual size is {200 * 1024 * 1024 + 70 * 1024 * 1024} bytes." in message
    assert heavy  # the function keeps its old code
    assert call(lam, fn_name) == 1
    other = lam.publish_layer_version(LayerName=f"{fn_name}-more"[:60], Content={"ZipFile": pad})
    refused(
        lambda: lam.update_function_configuration(FunctionName=fn_name, Layers=[big["LayerVersionArn"], other["LayerVersionArn"]]),
        "InvalidParameterValueException",
        "exceeds the maximum allowed size",
    )
    assert len(lam.get_function_configuration(FunctionName=fn_name)["Layers"]) == 1
    lam.delete_function(FunctionName=fn_name)
    lam.delete_layer_version(LayerName=f"{fn_name}-big"[:60], VersionNumber=1)
    lam.delete_layer_version(LayerName=f"{fn_name}-more"[:60], VersionNumber=1)


def test_layer_content_is_stored_once_and_collected_when_nothing_names_it(server, lam, fn_name):
    content = make_zip({"python/once.py": f"TAG = '{fn_name}'\n"})
    digest = hashlib.sha256(content).hexdigest()
    blob = server.data_dir / "code" / "blobs" / f"{digest}.zip"
    tree = server.data_dir / "code" / "trees" / digest
    a = lam.publish_layer_version(LayerName=f"{fn_name}-x"[:60], Content={"ZipFile": content})
    b = lam.publish_layer_version(LayerName=f"{fn_name}-y"[:60], Content={"ZipFile": content})
    assert a["Content"]["CodeSha256"] == b["Content"]["CodeSha256"] and blob.is_file() and tree.is_dir()
    create(lam, fn_name, {"app.py": "import once\ndef handler(e, c):\n    return once.TAG\n"}, [a["LayerVersionArn"]])
    assert call(lam, fn_name) == fn_name
    lam.delete_layer_version(LayerName=f"{fn_name}-x"[:60], VersionNumber=1)
    lam.delete_layer_version(LayerName=f"{fn_name}-y"[:60], VersionNumber=1)
    # Still named by the function: kept.
    assert call(lam, fn_name) == fn_name and blob.is_file()
    lam.update_function_configuration(FunctionName=fn_name, Layers=[])
    wait_for(lambda: not blob.exists() and not tree.exists(), timeout=30)


def test_layers_survive_a_kill_and_keep_their_numbers(tmp_path):
    with ServerProcess(tmp_path / "data") as srv:
        lam = srv.client()
        publish(lam, "durable", {"python/d.py": "D = 1\n"})
        publish(lam, "durable", {"python/d.py": "D = 2\n"})
        lam.delete_layer_version(LayerName="durable", VersionNumber=2)
        lam.add_layer_version_permission(
            LayerName="durable", VersionNumber=1, StatementId="s", Action="lambda:GetLayerVersion", Principal="*"
        )
        create(
            lam,
            "uses-it",
            {"app.py": "import d\ndef handler(e, c):\n    return d.D\n"},
            [f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:durable:1"],
        )
        srv.stop(sig=9)
    with ServerProcess(tmp_path / "data") as srv:
        lam = srv.client()
        assert [v["Version"] for v in lam.list_layer_versions(LayerName="durable")["LayerVersions"]] == [1]
        assert json.loads(lam.get_layer_version_policy(LayerName="durable", VersionNumber=1)["Policy"])["Statement"][0]["Sid"] == "s"
        assert publish(lam, "durable", {"python/d.py": "D = 3\n"})["Version"] == 3
        assert call(lam, "uses-it") == 1
        srv.stop()


NODE_APP = """
const lib = require('layerlib');
exports.handler = async () => ({from: lib.name, opt: require('fs').readdirSync('/opt').sort()});
"""


def test_nodejs_finds_modules_in_opt_nodejs_node_modules(lam, fn_name):
    layer = publish(lam, f"{fn_name}-node"[:60], {"nodejs/node_modules/layerlib/index.js": "exports.name = 'node layer';\n"})
    create(lam, fn_name, {"index.js": NODE_APP}, [layer["LayerVersionArn"]], runtime="nodejs20.x", handler="index.handler")
    assert call(lam, fn_name) == {"from": "node layer", "opt": ["nodejs"]}


CUSTOM_BOOTSTRAP = """#!/bin/sh
# A bootstrap from a layer: a shell runtime over the Runtime API.
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\\r' | cut -d' ' -f2)
  out=$(layer-helper)
  curl -sS -X POST -d "{\\"helper\\": \\"$out\\", \\"home\\": \\"$(dirname "$0")\\"}" "$api/$id/response" >/dev/null
done
"""


def test_a_custom_runtime_starts_opt_bootstrap_with_opt_bin_on_its_path(lam, fn_name):
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: the layer's shell bootstrap uses it (Debian's curl package)")
    layer = publish(
        lam,
        f"{fn_name}-rt"[:60],
        {"bootstrap": CUSTOM_BOOTSTRAP, "bin/layer-helper": "#!/bin/sh\necho helped\n"},
        {"bootstrap": 0o755, "bin/layer-helper": 0o755},
    )
    # The function's own zip has no bootstrap: /opt/bootstrap is the one.
    create(lam, fn_name, {"handler.txt": "nothing to run here"}, [layer["LayerVersionArn"]], runtime="provided.al2023", handler="none")
    assert call(lam, fn_name) == {"helper": "helped", "home": "/opt"}


@pytest.mark.cli
@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")
def test_the_aws_cli_publishes_a_layer_and_attaches_it(server, tmp_path, fn_name):
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=server.url,
        AWS_SHARED_CREDENTIALS_FILE=str(server.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_PAGER="",
    )
    env.pop("AWS_PROFILE", None)

    def aws(*args):
        proc = subprocess.run([shutil.which("aws"), "lambda", *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    (tmp_path / "layer.zip").write_bytes(make_zip({"python/greeting.py": "TEXT = 'hello from a layer'\n"}))
    (tmp_path / "fn.zip").write_bytes(make_zip({"app.py": "import greeting\ndef handler(e, c):\n    return greeting.TEXT\n"}))
    layer = aws(
        "publish-layer-version",
        "--layer-name",
        f"{fn_name}-cli"[:60],
        "--zip-file",
        f"fileb://{tmp_path / 'layer.zip'}",
        "--compatible-runtimes",
        PY,
    )
    aws(
        "create-function",
        "--function-name",
        fn_name,
        "--runtime",
        PY,
        "--role",
        ROLE,
        "--handler",
        "app.handler",
        "--zip-file",
        f"fileb://{tmp_path / 'fn.zip'}",
    )
    aws("wait", "function-active-v2", "--function-name", fn_name)
    aws("update-function-configuration", "--function-name", fn_name, "--layers", layer["LayerVersionArn"])
    aws("wait", "function-updated-v2", "--function-name", fn_name)
    aws("invoke", "--function-name", fn_name, str(tmp_path / "out.json"))
    assert json.loads((tmp_path / "out.json").read_text()) == "hello from a layer"
    listed = aws("list-layer-versions", "--layer-name", f"{fn_name}-cli"[:60])
    assert [v["Version"] for v in listed["LayerVersions"]] == [1]
    aws("delete-layer-version", "--layer-name", f"{fn_name}-cli"[:60], "--version-number", "1")
