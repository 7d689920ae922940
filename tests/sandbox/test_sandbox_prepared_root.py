"""The prepared root: what the sandboxes of a runtime share is built once
(csrc/mounts.c, ll_template_build) and cloned into each; each sandbox
mounts only its own parts. It must look, from inside, exactly like the
root a sandbox builds mount by mount."""

from __future__ import annotations

import errno
import os
import threading

import pytest
import sandbox_probe

from lambdalet.sandbox import nsspawn, prepared_roots, rootfs
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

# Building a prepared root makes a tmpfs in the host's user namespace.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="prepared roots are built by root only")

OWN_KINDS = (nsspawn.PROC, nsspawn.STAGE_BIND, nsspawn.OVERLAY_RO, nsspawn.FIXED_FILE, nsspawn.READONLY)


def _layout(**kw) -> rootfs.RootLayout:
    fields = dict(python_prefix="/srv/python", runtime_sources={"lambdalet/runtime": "/src/runtime"}, code_dir="/data/code/abc")
    fields.update(kw)
    return rootfs.RootLayout(**fields)


def test_split_leaves_each_sandbox_its_proc_tmp_code_and_layers():
    ops = rootfs.plan(_layout(layers=("/l/one", "/l/two")))
    shared, own = rootfs.split(ops)
    # Nothing lost; the own mounts' mountpoints added.
    mountpoints = [op for op in shared if op.kind == nsspawn.MKDIR and op.dst in rootfs.OWN_MOUNTS]
    assert sorted(op.dst for op in mountpoints) == sorted(rootfs.OWN_MOUNTS)
    assert sorted(map(repr, [op for op in shared if op not in mountpoints] + own)) == sorted(map(repr, ops))
    assert not [op for op in shared if op.kind in OWN_KINDS]
    assert not [op for op in own if op.kind == nsspawn.MKDIR]  # the prepared root is read-only
    # The function's own: its code, layers, /tmp (its size) and a /proc of its pid namespace.
    own_dsts = {op.dst for op in own}
    assert {"/proc", "/tmp", "/var/task", "/opt", "/layers/0", "/layers/1", rootfs.BOOT_ID} <= own_dsts
    assert not [op for op in shared if op.dst in ("/tmp", "/var/task", "/opt") and op.kind != nsspawn.MKDIR]
    # What every sandbox of the runtime shares: the same whatever the
    # function (its code, /tmp size, layers or none).
    other_shared, other_own = rootfs.split(rootfs.plan(_layout(code_dir="/data/code/xyz", ephemeral_mb=10240)))
    assert other_shared == shared
    assert [op.kind for op in other_own if op.dst == "/opt"] == []  # no layers: the template's empty /opt


@pytest.mark.parametrize(
    "sources, layers",
    [({"../task/lib": "/src/lib"}, ()), ({"../../opt/x": "/src/x"}, ("/l/one",)), ({"../../opt/x": "/src/x"}, ("/l/one", "/l/two"))],
    ids=["below the code", "below one layer", "below the layers' overlay"],
)
def test_a_plan_with_an_op_below_the_functions_own_files_is_refused(sources, layers):
    # /var/task and /opt hold the user's zips, symlinks and all: nothing
    # the plan makes may be walked through them.
    with pytest.raises(ValueError, match="inside /"):
        rootfs.plan(_layout(runtime_sources={"lambdalet/runtime": "/src/runtime", **sources}, layers=layers))
    # Without layers /opt is the plan's own empty directory.
    if layers:
        rootfs.plan(_layout(runtime_sources={"lambdalet/runtime": "/src/runtime", **sources}))


@needs_root
def test_a_plan_that_cannot_be_built_turns_off_only_its_own_prepared_root(tmp_path, monkeypatch):
    # One runtime's sources refused (here one that is missing; the same for
    # a path that leads nowhere inside the tree): that runtime's sandboxes
    # build their own roots, every other runtime keeps its prepared root.
    builds = []
    real_build = nsspawn.build_template

    def counted(ops, uid, gid):
        builds.append([op.dst for op in ops])
        return real_build(ops, uid, gid)

    monkeypatch.setattr(nsspawn, "build_template", counted)
    refused = [nsspawn.MountOp(nsspawn.MKDIR, "/etc", mode=0o755), nsspawn.MountOp(nsspawn.BIND_RO, "/usr", src=str(tmp_path / "absent"))]
    other = [nsspawn.MountOp(nsspawn.MKDIR, "/etc", mode=0o755), nsspawn.MountOp(nsspawn.BIND_RO, "/usr", src="/usr")]
    roots = prepared_roots.PreparedRoots(0, enabled=True)
    try:
        assert roots.get(refused) is None
        tree = roots.get(other)
        assert tree is not None and tree.fd >= 0
        assert len(roots) == 1
        # The refused plan is not built again on each of its spawns.
        assert roots.get(refused) is None
        assert builds == [["/etc", "/usr"], ["/etc", "/usr"]]
        # Its source there now (a later recheck sees it changed): tried again.
        (tmp_path / "absent").mkdir()
        monkeypatch.setattr(prepared_roots, "RECHECK_S", 0.0)
        roots._recheck_at = 0.0
        roots.recheck()
        assert roots.get(refused) is not None and len(roots) == 2
    finally:
        roots.close()


@pytest.mark.parametrize("storm", [15, 16])
@needs_root
def test_an_openat2_that_meets_a_mount_or_rename_storm_is_asked_again(storm):
    # RESOLVE_IN_ROOT answers EAGAIN when a `..` was walked while any mount
    # or rename happened on the system; a race this test cannot start at
    # will, so the answers are injected (the C core's switch for tests):
    # 16 tries in all, then the build fails, naming its step.
    ops = [nsspawn.MountOp(nsspawn.MKDIR, "/etc", mode=0o755)]
    nsspawn.lib.ll_mounts_openat2_fault(errno.EAGAIN, storm)
    try:
        if storm < 16:
            os.close(nsspawn.build_template(ops, 0, 0))
        else:
            with pytest.raises(OSError) as caught:
                nsspawn.build_template(ops, 0, 0)
            assert caught.value.errno == errno.EAGAIN and "template: openat2" in str(caught.value), caught.value
    finally:
        nsspawn.lib.ll_mounts_openat2_fault(0, 0)


@needs_root
def test_a_template_that_cannot_be_built_names_its_step_and_op(tmp_path):
    ops = [nsspawn.MountOp(nsspawn.MKDIR, "/etc", mode=0o755), nsspawn.MountOp(nsspawn.BIND_RO, "/usr", src=str(tmp_path / "absent"))]
    with pytest.raises(OSError) as caught:
        nsspawn.build_template(ops, 0, 0)
    assert "open_tree /usr" in str(caught.value) and caught.value.errno == 2
    # Each sandbox's own kinds have no place in it.
    with pytest.raises(OSError, match="not a shared mount op /proc"):
        nsspawn.build_template([nsspawn.MountOp(nsspawn.PROC, "/proc")], 0, 0)


# Every mount seen from inside: where, its own flags, its type; the files of
# the synthesised /etc with their owners and modes.
VIEW = """
mounts, superblocks = [], {}
for line in open('/proc/self/mountinfo'):
    fields = line.split()
    sep = fields.index('-')
    mounts.append((fields[4], fields[5], fields[sep + 1]))
    superblocks[fields[4]] = fields[sep + 3].split(',')[0]
files = {}
for path in ('/', '/etc', '/etc/passwd', '/etc/hosts', '/etc/resolv.conf', '/dev', '/dev/fd', '/proc', '/tmp', '/var/task', '/opt', '/var/runtime'):
    st = os.lstat(path)
    files[path] = (st.st_uid, st.st_gid, oct(st.st_mode))
report(mounts=sorted(mounts), superblocks=superblocks, files=files, etc=sorted(os.listdir('/etc')), dev=sorted(os.listdir('/dev')), passwd=open('/etc/passwd').read())
"""


def test_a_cloned_root_looks_like_one_built_mount_by_mount(backend, runtime_root, python, code_dir):
    prepared = sandbox_probe.run(backend, python, code_dir, VIEW).last
    built = NamespacedBackend(runtime_root, prepared_root=False, zygote=False)
    try:
        by_hand = sandbox_probe.run(built, python, code_dir, VIEW).last
    finally:
        built.close()
    # The same mounts with the same flags (ro, nosuid, nodev, noexec) and
    # types, the same files with the same owners and modes.
    assert prepared["mounts"] == by_hand["mounts"]
    assert prepared["files"] == by_hand["files"]
    assert (prepared["etc"], prepared["dev"], prepared["passwd"]) == (by_hand["etc"], by_hand["dev"], by_hand["passwd"])
    # And the root is the prepared one: its tmpfs is read-only down to the
    # superblock, shared by every sandbox of the runtime (so is /dev's).
    assert [m[1].split(",")[0] for m in prepared["mounts"] if m[0] in ("/", "/dev")] == ["ro", "ro"]
    assert (prepared["superblocks"]["/"], prepared["superblocks"]["/dev"]) == ("ro", "ro")
    assert (by_hand["superblocks"]["/"], by_hand["superblocks"]["/dev"]) == ("rw", "rw")


def test_every_sandbox_of_a_runtime_clones_one_template(backend, python, code_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "app.py").write_text("def handler(event, context):\n    return 1\n")
    other.chmod(0o755)
    tmp_path.chmod(0o755)
    snippet = "report(ls=sorted(os.listdir('/var/task')), tmp=os.statvfs('/tmp').f_blocks * os.statvfs('/tmp').f_frsize)"
    first = sandbox_probe.run(backend, python, code_dir, snippet).last
    second = sandbox_probe.run(backend, python, str(other), snippet, ephemeral_mb=1024).last
    # Each with its own code and /tmp, from one prepared root.
    assert "app.py" in first["ls"] and second["ls"] == ["app.py"]
    assert (first["tmp"], second["tmp"]) == (512 << 20, 1024 << 20)
    assert len(backend._prepared_roots) == 1


@needs_root
def test_a_spawn_of_a_built_runtime_never_waits_for_a_build(backend, python, code_dir):
    """get() and hold() of a tree already built take no build lock: a spawn
    does not wait behind another runtime's build (which forks a probe) or
    a recheck (which stats every source)."""
    assert sandbox_probe.run(backend, python, code_dir, "report(up=True)").last == {"up": True}
    roots = backend._prepared_roots
    key, tree = next(iter(roots._trees.items()))
    got: list = []
    thread = threading.Thread(target=lambda: got.append((roots.get(list(key)), roots.hold(tree))))
    try:
        with roots._lock:  # a build or a recheck under way
            thread.start()
            thread.join(10)
            assert got, "the spawn waited for the build lock"
    finally:
        thread.join()
        for _, fd in got:
            if fd >= 0:
                os.close(fd)
    assert got[0][0] is tree and got[0][1] >= 0


@pytest.mark.parametrize("impostor", ["host root", "writable tmpfs"])
@needs_root
def test_an_fd_that_is_no_template_is_never_cloned_as_a_root(runtime_root, python, code_dir, impostor):
    # Whatever mount an fd names may be cloned: an fd number that came to
    # name something else must fail the spawn, not become its root.
    be = NamespacedBackend(runtime_root, zygote=False)
    try:
        assert sandbox_probe.run(be, python, code_dir, "report(ok=1)").last == {"ok": 1}
        (plan,) = be._plans.values()
        real = plan.tree
        fd = os.open("/", os.O_PATH | os.O_CLOEXEC) if impostor == "host root" else sandbox_probe.detached_tmpfs()
        plan.tree = prepared_roots.Tree(fd, ())
        try:
            with pytest.raises(OSError, match="clone prepared root|prepared root: not a sealed tmpfs"):
                sandbox_probe.run(be, python, code_dir, "report(ok=1)")
        finally:
            plan.tree = real
            os.close(fd)
    finally:
        be.close()


@needs_root
def test_a_host_source_replaced_reaches_the_sandboxes_started_after_it(tmp_path, monkeypatch):
    # A prepared root binds its sources once; a source replaced by a rename
    # (as ldconfig replaces /etc/ld.so.cache) must still reach new sandboxes,
    # as it does when each builds its own root.
    monkeypatch.setattr(prepared_roots, "RECHECK_S", 0.0)
    extra, code = tmp_path / "extra", tmp_path / "code"
    for path in (extra, code):
        path.mkdir()
    (extra / "v").write_text("one")
    for path in (tmp_path, extra, code, extra / "v"):
        path.chmod(0o755)
    root = RuntimeRoot.create(tmp_path / "runtime", extra_sources={"extra": extra})
    be = NamespacedBackend(root, zygote=False)
    snippet = "report(v=open('/var/runtime/extra/v').read())"
    try:
        assert sandbox_probe.run(be, root.python, str(code), snippet).last == {"v": "one"}
        replacement = tmp_path / "extra.new"
        replacement.mkdir()
        (replacement / "v").write_text("two")
        for path in (replacement, replacement / "v"):
            path.chmod(0o755)
        extra.rename(tmp_path / "extra.old")
        replacement.rename(extra)
        assert sandbox_probe.run(be, root.python, str(code), snippet).last == {"v": "two"}
        assert len(be._prepared_roots) == 1  # the old one replaced, not kept beside it
    finally:
        be.close()


@needs_root
def test_the_probe_asks_a_child_in_a_sandboxs_position_whether_it_may_clone(tmp_path):
    # build_template keeps a tree only if a process in new user and mount
    # namespaces may clone it; the host's own mounts it may not.
    from lambdalet.csrc._native import lib

    shared, _ = rootfs.split(rootfs.plan(_layout(python_prefix="/usr", runtime_sources={}, code_dir=str(tmp_path))))
    template = nsspawn.build_template(shared, 0, 0)
    host_root = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        assert lib.ll_template_probe(template) == 0
        assert lib.ll_template_probe(host_root) == -errno.EINVAL
    finally:
        os.close(template)
        os.close(host_root)
