"""The prepared root against what a security review found in it: no mount
of a sandbox shares events with a host mount, even a shared one; a spawn
clones only the root it was planned with, whatever happened to the fd
numbers meanwhile; every tmpfs of the root is read-only at its superblock;
a path inside the root is resolved inside it, never on the host."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import subprocess
import sys

import msgspec
import pytest
import sandbox_probe

from lambdalet.sandbox import nsspawn, prepared_roots, rootfs
from lambdalet.sandbox.namespaced import HOST_ID_BASE, NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

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


def _replace_dir(path: pathlib.Path, text: str) -> None:
    """path replaced by a rename, as ldconfig replaces /etc/ld.so.cache."""
    new = path.with_name(path.name + ".new")
    new.mkdir()
    (new / "v").write_text(text)
    for p in (new, new / "v"):
        p.chmod(0o755)
    path.rename(path.with_name(path.name + ".old"))
    new.rename(path)


def _world_readable(*paths: pathlib.Path) -> None:
    for p in paths:
        p.chmod(0o755)


@needs_root
def test_a_spawn_racing_a_recheck_clones_the_root_it_was_planned_with(tmp_path, monkeypatch):
    # Between a spawn's plan and the sandbox's clone, a recheck replaces the
    # plan's prepared root and the number of its closed fd comes to name
    # another runtime's root. The spawn holds a duplicate of its own: it
    # clones the root it was planned with, and the next spawn a new one.
    monkeypatch.setattr(prepared_roots, "RECHECK_S", 0.0)
    extra, other, code = tmp_path / "extra", tmp_path / "other", tmp_path / "code"
    for path, text in ((extra, "one"), (other, "other"), (code, "")):
        path.mkdir()
        (path / "v").write_text(text)
        _world_readable(path, path / "v")
    _world_readable(tmp_path)
    root = RuntimeRoot.create(tmp_path / "runtime", extra_sources={"extra": extra})
    be = NamespacedBackend(root, zygote=False)
    snippet = "report(v=open('/var/runtime/extra/v').read())"
    reused: list[int] = []
    real_spawn = nsspawn.spawn

    def racing_spawn(cfg, compiled=None):
        if not reused:
            (tree,) = be._prepared_roots._trees.values()
            number = tree.fd
            _replace_dir(extra, "two")
            be._prepared_roots.recheck()
            layout = be.layout(sandbox_probe.make_spec(str(code)))
            layout = msgspec.structs.replace(layout, runtime_sources={**layout.runtime_sources, "extra": str(other)})
            stranger = nsspawn.build_template(rootfs.split(rootfs.plan(layout))[0], HOST_ID_BASE, HOST_ID_BASE)
            if stranger != number:  # it often is: the kernel hands out the lowest free number
                os.dup2(stranger, number)
                os.close(stranger)
            reused.append(number)
        return real_spawn(cfg, compiled)

    monkeypatch.setattr(nsspawn, "spawn", racing_spawn)
    try:
        assert sandbox_probe.run(be, root.python, str(code), snippet).last == {"v": "one"}
        assert sandbox_probe.run(be, root.python, str(code), snippet).last == {"v": "two"}
        assert len(be._prepared_roots) == 1
    finally:
        be.close()
        for fd in reused:
            os.close(fd)


@pytest.mark.parametrize("impostor", ["another runtime's root", "a read-only tmpfs"])
@needs_root
def test_a_sealed_tmpfs_that_is_not_the_plans_root_is_refused(runtime_root, python, code_dir, tmp_path, impostor):
    # Both pass for a sealed tmpfs; only the plan's own tree shows the
    # device and inode recorded when it was built.
    be = NamespacedBackend(runtime_root, zygote=False)
    try:
        assert sandbox_probe.run(be, python, code_dir, "report(ok=1)").last == {"ok": 1}
        (plan,) = be._plans.values()
        real = plan.tree
        if impostor == "a read-only tmpfs":
            fd = sandbox_probe.detached_tmpfs(1)  # MOUNT_ATTR_RDONLY
        else:
            layout = rootfs.RootLayout(python_prefix="/usr", runtime_sources={}, code_dir=str(tmp_path))
            fd = nsspawn.build_template(rootfs.split(rootfs.plan(layout))[0], HOST_ID_BASE, HOST_ID_BASE)
        mixed_up = prepared_roots.Tree(fd, ())
        mixed_up.dev, mixed_up.ino = real.dev, real.ino  # the fd's number mixed up, not the record
        plan.tree = mixed_up
        try:
            with pytest.raises(OSError, match="prepared root: not the template built for this sandbox") as caught:
                sandbox_probe.run(be, python, code_dir, "report(ok=1)")
            assert caught.value.errno == errno.EINVAL
        finally:
            plan.tree = real
            os.close(fd)
    finally:
        be.close()


def test_every_tmpfs_the_prepared_root_made_is_read_only_at_its_superblock(backend, python, code_dir):
    # The masks over the host's site-packages too: a mount flag alone a
    # sandbox holding CAP_SYS_ADMIN in its user namespace could clear.
    snippet = """
found = {}
for line in open('/proc/self/mountinfo'):
    fields = line.split()
    sep = fields.index('-')
    if fields[sep + 1] == 'tmpfs':
        found[fields[4]] = fields[sep + 3].split(',')[0]
report(found=found)
"""
    found = sandbox_probe.run(backend, python, code_dir, snippet).last["found"]
    masks = [d for d in backend._default.hidden if d in found]
    assert masks, (backend._default.hidden, found)
    assert [found[d] for d in masks] == ["ro"] * len(masks)
    # Of all the tmpfs inside, only the sandbox's own may be writable: its
    # /tmp, and /proc's fixed files (from its staging root, gone after the pivot).
    assert {path: sb for path, sb in found.items() if sb != "ro" and not path.startswith("/proc/")} == {"/tmp": "rw"}


@needs_root
def test_a_mask_behind_an_absolute_symlink_is_resolved_inside_the_template(tmp_path):
    # The template is built in the server's mount namespace: a path inside a
    # bound tree is resolved as a sandbox would resolve it, an absolute
    # symlink from the template's root. Taken from the host's, the mask of
    # /srv/tree/local/hidden would be mounted on the host's directory.
    host, tree = tmp_path / "host", tmp_path / "tree"
    (host / "hidden").mkdir(parents=True)
    (tree / "real" / "hidden").mkdir(parents=True)
    (tree / "local").symlink_to(host)
    ops = [
        nsspawn.MountOp(nsspawn.BIND_RO, "/srv/tree", src=str(tree)),
        nsspawn.MountOp(nsspawn.MASK, "/srv/tree/local/hidden"),
        nsspawn.MountOp(nsspawn.MASK, "/srv/tree/real/hidden"),
    ]
    fd = nsspawn.build_template(ops, 0, 0)
    try:
        assert not os.path.ismount(host / "hidden")
        # The one that is inside the template is masked (its own file system).
        inside = f"/proc/self/fd/{fd}/srv/tree/real"
        assert os.stat(f"{inside}/hidden").st_dev != os.stat(inside).st_dev
    finally:
        os.close(fd)
        if os.path.ismount(host / "hidden"):
            subprocess.run(["umount", "-l", str(host / "hidden")], check=True)
