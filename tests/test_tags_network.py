"""Tags, and the lambdalet:network tag that gives a function egress."""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError

NETS = (
    "def handler(e, c):\n"
    "    lines = open('/proc/net/dev').read().splitlines()[2:]\n"
    "    return sorted(line.split(':')[0].strip() for line in lines)\n"
)


def test_tag_untag_list(lam, deploy):
    name = deploy({"app.py": NETS}, Tags={"team": "a"})
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "a"}
    lam.tag_resource(Resource=arn, Tags={"env": "prod"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "a", "env": "prod"}
    lam.untag_resource(Resource=arn, TagKeys=["team"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "prod"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"env": "prod"}
    for bad in ({"aws:reserved": "x"}, {"lambdalet:network": "everywhere"}):
        with pytest.raises(ClientError) as exc:
            lam.tag_resource(Resource=arn, Tags=bad)
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        lam.list_tags(Resource=arn + ":1")
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"


@pytest.mark.skipif(os.geteuid() != 0, reason="egress needs root for the veth pair and NAT")
def test_network_tag_switches_a_function_between_loopback_and_egress(lam, deploy):
    name = deploy({"app.py": NETS})
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == ["lo"]
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"lambdalet:network": "egress"})
    # A new revision: the next call gets a fresh instance with an uplink.
    interfaces = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    assert "lo" in interfaces and len(interfaces) == 2, interfaces
    lam.untag_resource(Resource=arn, TagKeys=["lambdalet:network"])
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == ["lo"]
