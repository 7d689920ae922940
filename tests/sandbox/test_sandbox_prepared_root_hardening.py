"""The prepared root against what a security review found in it: no mount
of a sandbox shares events with a host mount, even a shared one."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

# Building a prepared root makes a tmpfs in the host's user namespace.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="prepared roots are built by root only")

HERE = pathlib.Path(__file__).parent

# Runs in a mount namespace of its own (unshare -m, every mount private), so
# what it mounts is never the host's. There the interpreter's prefix, which
# every prepared root binds, is made a shared mount, as systemd makes them;
# a sandbox starts; then a tmpfs is mounted under the prefix.
SHARED_SOURCE = """
import json, os, pathlib, subprocess, sys
sys.path.insert(0, sys.argv[1])
import sandbox_probe
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

work, code_dir = pathlib.Path(sys.argv[2]), sys.argv[3]
root = RuntimeRoot.create(work / "runtime")
prefix = root.interpreter.prefix
subprocess.run(["mount", "--bind", prefix, prefix], check=True)
subprocess.run(["mount", "--make-shared", prefix], check=True)
source_shared = any(l.split()[4] == prefix and " shared:" in l for l in open("/proc/self/mountinfo"))
target = next(os.path.join(prefix, d) for d in ("include", "share", "lib") if os.path.isdir(os.path.join(prefix, d)))
snippet = '''
def linked():
    return [l for l in open('/proc/self/mountinfo').read().splitlines() if ' shared:' in l or ' master:' in l]
report(linked=linked(), seen=os.path.exists(event['target'] + '/propagated'))
os.read(3, 1)
report(linked=linked(), seen=os.path.exists(event['target'] + '/propagated'))
'''
be = NamespacedBackend(root, zygote=False, cgroups=None, netns_pool=0)
try:
    sandbox = sandbox_probe.start(be, root.python, code_dir, snippet, event={"target": target})
    try:
        before = sandbox_probe.read_one(sandbox)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "lambdalet-probe", target], check=True)
        with open(os.path.join(target, "propagated"), "w") as f:
            f.write("x")
        sandbox.control.send(b"x")
        after = sandbox_probe.read_one(sandbox)
    finally:
        sandbox.destroy()
finally:
    be.close()
print(json.dumps({"source_shared": source_shared, "before": before, "after": after}))
"""


@needs_root
def test_a_host_mount_under_a_shared_source_never_reaches_a_sandbox(code_dir, tmp_path):
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", SHARED_SOURCE, str(HERE), str(tmp_path), code_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["source_shared"], "the test's source mount was not shared"
    # Nothing inside is a peer or a slave of any mount outside...
    assert seen["before"] == {"linked": [], "seen": False}
    # ...so a mount made on the host under the bound source stays the host's.
    assert seen["after"] == {"linked": [], "seen": False}
