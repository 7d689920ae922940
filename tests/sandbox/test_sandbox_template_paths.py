"""Every path a prepared root makes is resolved inside it. The template is
built in the server's mount namespace with root's credentials
(csrc/mounts.c, ll_template_build): a bound host tree that holds a symlink
(`x -> /etc`, `x -> ../../..`) must never take a mountpoint, a directory,
a file, a symlink, a chmod, a chown or a seal onto the host. A directory of
the test's tmp_path stands for the host; the template holds a twin of its
path, so an absolute symlink resolved inside the template lands there."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import stat
import subprocess
import sys
import tempfile

import pytest
import sandbox_probe

from lambdalet.sandbox import nsspawn, rootfs
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

# Building a prepared root makes a tmpfs in the host's user namespace.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="prepared roots are built by root only")

OWNER = 4242  # the template's owner: never root, so a chown shows
TREE = "/srv/tree"  # where the host tree with the symlinks is bound


def _host_and_tree(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """host: stands for the host's file system; tree: a bind source whose
    `abs` points at host by its absolute path and `rel` climbs out of the
    bind (../../.. from /srv/tree/rel). A plain walk takes `abs` from the
    host's root; `..` it stops at the template's root (a detached tree has
    no parent to climb to), with or without RESOLVE_IN_ROOT: the rel rows
    hold that line."""
    host, tree = tmp_path / "host", tmp_path / "tree"
    host.mkdir()
    tree.mkdir()
    (tree / "abs").symlink_to(host)
    (tree / "rel").symlink_to("../../..")
    return host, tree


def _inside(fd: int, path: str) -> str:
    """path as the template holds it."""
    return f"/proc/self/fd/{fd}{path}"


def _everything_under(path: pathlib.Path) -> dict[str, tuple[int, int, int]]:
    """Each entry under path: (mode, uid, gid), symlinks not followed."""
    out = {str(path): _meta(path)}
    for p in sorted(path.rglob("*")):
        out[str(p)] = _meta(p)
    return out


def _meta(p: pathlib.Path) -> tuple[int, int, int]:
    st = p.lstat()
    return (st.st_mode, st.st_uid, st.st_gid)


# One op of each kind that makes a path, at `{via}/sub/made` under the bound
# tree (sub is missing: its parents are made too), and what the template
# must hold there afterwards.
def _dir(st: os.stat_result, parent: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) and st.st_dev == parent.st_dev and stat.S_IMODE(st.st_mode) == 0o711


def _mount_of_dir(st: os.stat_result, parent: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) and st.st_dev != parent.st_dev


def _mount_of_null(st: os.stat_result, parent: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat("/dev/null").st_rdev


def _symlink(st: os.stat_result, parent: os.stat_result) -> bool:
    return stat.S_ISLNK(st.st_mode)


def _file(st: os.stat_result, parent: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 and st.st_size == len("text\n")


def _op(kind: str, dst: str, source: pathlib.Path) -> nsspawn.MountOp:
    return {
        "mkdir": nsspawn.MountOp(nsspawn.MKDIR, dst, mode=0o711),
        "bind": nsspawn.MountOp(nsspawn.BIND_RO, dst, src=str(source)),
        "bind device": nsspawn.MountOp(nsspawn.BIND_DEV, dst, src="/dev/null"),
        "tmpfs": nsspawn.MountOp(nsspawn.TMPFS, dst, data="mode=0755,size=16k"),
        "view": nsspawn.MountOp(nsspawn.VIEW_RO, dst, src=str(source)),
        "symlink": nsspawn.MountOp(nsspawn.SYMLINK, dst, data="/usr/lib"),
        "write file": nsspawn.MountOp(nsspawn.WRITE_FILE, dst, data="text\n", mode=0o640),
    }[kind]


EXPECTED = {
    "mkdir": _dir,
    "bind": _mount_of_dir,
    "bind device": _mount_of_null,
    "tmpfs": _mount_of_dir,
    "view": _mount_of_dir,
    "symlink": _symlink,
    "write file": _file,
}


@pytest.mark.parametrize("via", ["abs", "rel"])
@pytest.mark.parametrize("kind", list(EXPECTED))
@needs_root
def test_a_path_through_a_symlink_of_a_bound_tree_is_made_inside_the_template(tmp_path, kind, via):
    host, tree = _host_and_tree(tmp_path)
    source = tmp_path / "source"
    source.mkdir()
    before = _everything_under(host)
    # Where the symlink leads inside the template: the twin of the host's
    # path (made first), or the template's root.
    landing = str(host) if via == "abs" else ""
    ops = [
        nsspawn.MountOp(nsspawn.MKDIR, str(host), mode=0o755),
        nsspawn.MountOp(nsspawn.BIND_RO, TREE, src=str(tree)),
        _op(kind, f"{TREE}/{via}/sub/made", source),
    ]
    fd = nsspawn.build_template(ops, OWNER, OWNER)
    try:
        assert _everything_under(host) == before, "the build changed the host's tree"
        made = os.lstat(_inside(fd, f"{landing}/sub/made"))
        assert EXPECTED[kind](made, os.stat(_inside(fd, f"{landing}/sub"))), (kind, made)
        # The parent made on the way is the template's, given to its owner.
        sub = os.stat(_inside(fd, f"{landing}/sub"))
        assert (sub.st_uid, stat.S_IMODE(sub.st_mode)) == (OWNER, 0o755)
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", list(EXPECTED))
@needs_root
def test_a_path_whose_symlink_leads_nowhere_inside_the_template_is_refused_by_name(tmp_path, kind):
    # No twin this time: inside the template the host's path does not exist.
    host, tree = _host_and_tree(tmp_path)
    source = tmp_path / "source"
    source.mkdir()
    before = _everything_under(host)
    dst = f"{TREE}/abs/sub/made"
    ops = [nsspawn.MountOp(nsspawn.BIND_RO, TREE, src=str(tree)), _op(kind, dst, source)]
    with pytest.raises(OSError) as caught:
        nsspawn.build_template(ops, OWNER, OWNER)
    assert caught.value.errno == errno.ENOENT
    assert f"parent {dst}:" in str(caught.value), caught.value
    assert _everything_under(host) == before, "the build changed the host's tree"


@pytest.mark.parametrize("kind", ["mkdir", "bind", "tmpfs", "view", "write file"])
@needs_root
def test_a_last_component_that_is_a_symlink_is_refused_not_followed(tmp_path, kind):
    # mkdir chmods what it made, a bind or a tmpfs mounts on it: through
    # `abs` that would be the host's directory itself.
    host, tree = _host_and_tree(tmp_path)
    source = tmp_path / "source"
    source.mkdir()
    before = _everything_under(host)
    dst = f"{TREE}/abs"
    ops = [
        nsspawn.MountOp(nsspawn.MKDIR, str(host), mode=0o755),
        nsspawn.MountOp(nsspawn.BIND_RO, TREE, src=str(tree)),
        _op(kind, dst, source),
    ]
    try:
        with pytest.raises(OSError) as caught:
            fd = nsspawn.build_template(ops, OWNER, OWNER)
            os.close(fd)
        assert caught.value.errno == errno.ELOOP, caught.value
        assert f" {dst}:" in str(caught.value)
        assert _everything_under(host) == before, "the build changed the host's tree"
    finally:
        os.chmod(host, 0o755)


# Runs in a mount namespace of its own (unshare -m, every mount private):
# at the path the template's own tmpfs is mounted on through `abs`, the
# "host" has a tmpfs of its own (as the host's /run or /dev/shm are) that
# holds a file. A chown or a seal by path would take the host's tmpfs.
HOST_TMPFS = """
import json, os, pathlib, subprocess, sys
from lambdalet.sandbox import nsspawn, rootfs
host, tree, owner = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
(host / "sub" / "made").mkdir(parents=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "host-standin", str(host / "sub" / "made")], check=True)
(host / "sub" / "made" / "kept").write_text("host's\\n")
ops = [
    nsspawn.MountOp(nsspawn.MKDIR, f"{host}/sub/made", mode=0o755),
    nsspawn.MountOp(nsspawn.BIND_RO, "/srv/tree", src=str(tree)),
    nsspawn.MountOp(nsspawn.TMPFS, "/srv/tree/abs/sub/made", data="mode=0755,size=16k"),
    nsspawn.MountOp(nsspawn.WRITE_FILE, "/srv/tree/abs/sub/made/ours", data="template's\\n", mode=0o644),
]
try:
    fd = nsspawn.build_template(ops, owner, owner)
except OSError as exc:
    built = str(exc)
else:
    built = "ok"
    inside = f"/proc/self/fd/{fd}{host}/sub/made"
    names = sorted(os.listdir(inside))
    owners = sorted({os.stat(f"{inside}/{name}").st_uid for name in names})
    ours = [names, owners, os.statvfs(inside).f_flag & os.ST_RDONLY != 0]
    os.close(fd)
kept = os.stat(host / "sub" / "made" / "kept")
listing = sorted(os.listdir(host / "sub" / "made"))
try:
    (host / "sub" / "made" / "probe").write_text("x")
    writable = True
except OSError:
    writable = False
print(json.dumps({"built": built, "ours": ours if built == "ok" else None,
                  "kept_owner": kept.st_uid, "host_listing": listing,
                  "host_writable": writable}))
"""


@needs_root
def test_a_tmpfs_reached_through_a_symlink_is_chowned_and_sealed_not_the_hosts(tmp_path):
    host, tree = _host_and_tree(tmp_path)
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", HOST_TMPFS, str(host), str(tree), str(OWNER)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    # The host's tmpfs: still writable (not sealed), its file still root's,
    # nothing written into it.
    assert seen["host_writable"], seen
    assert seen["kept_owner"] == 0, seen
    assert seen["host_listing"] == ["kept"], seen
    # The template's own tmpfs, at the twin path: the owner's, sealed.
    assert seen["built"] == "ok", seen
    assert seen["ours"] == [["ours"], [OWNER], True], seen


# The sandbox's first process builds its own root when there is no
# prepared root (or what the prepared root leaves it: /proc, /tmp, its code
# and layers). There the host's tree is under /oldroot until the last pivot,
# and a walk climbs out of /newroot by `..` too: a symlink in a bound tree
# would take a mountpoint onto the host, made with the sandbox's own
# credentials (its host uid).
@pytest.fixture(params=["openat2", "no openat2"])
def openat2(request):
    """Every openat2 of the test (and of the sandboxes it spawns) answered
    ENOSYS, as before Linux 5.6 or under a seccomp profile that answers
    so: the walks inside the root are then made in user space."""
    if request.param == "no openat2":
        nsspawn.lib.ll_mounts_openat2_fault(errno.ENOSYS, -1)
    try:
        yield request.param
    finally:
        nsspawn.lib.ll_mounts_openat2_fault(0, 0)


@pytest.mark.parametrize("prepared_root", [False, True], ids=["own root", "prepared root first"])
@pytest.mark.parametrize("via", ["abs", "rel"])
@needs_root
def test_a_sandbox_building_its_root_makes_no_path_through_a_symlink_onto_the_host(tmp_path, via, prepared_root, openat2):
    # The "host" directory where the sandbox's host uid may write, as in
    # /tmp (tmp_path's parents are private to root).
    with tempfile.TemporaryDirectory(prefix="lambdalet-host-") as where:
        host = pathlib.Path(where)
        host.chmod(0o777)
        refused = _sandbox_through_symlink(tmp_path, host, via, prepared_root)
        assert list(host.iterdir()) == [], "the sandbox made a path on the host"
        assert refused is not None, "the sandbox ran"
        assert refused.errno == errno.ENOENT, refused
        assert "mountpoint: parent" in str(refused), refused


def _sandbox_through_symlink(tmp_path: pathlib.Path, host: pathlib.Path, via: str, prepared_root: bool) -> OSError | None:
    """The spawn's refusal, or None when the sandbox ran."""
    runtime_extra, inner, code = (tmp_path / d for d in ("extra", "inner", "code"))
    for d in (runtime_extra, inner, code):
        d.mkdir()
        d.chmod(0o755)
    # /var/runtime/extra/esc: absolute through the staging root's /oldroot,
    # or four levels up from /newroot/var/runtime/extra, out of /newroot.
    target = f"/oldroot{host}" if via == "abs" else f"../../../../oldroot{host}"
    (runtime_extra / "esc").symlink_to(target)
    root = RuntimeRoot.create(tmp_path / "runtime")
    be = NamespacedBackend(root, zygote=False, prepared_root=prepared_root)
    # A runtime source mounted under another one's symlink (the sources are
    # the server's: what a host's layout could hold).
    be._default.sources = {**be._default.sources, "extra": str(runtime_extra), "extra/esc/sub": str(inner)}
    try:
        sandbox_probe.run(be, root.python, str(code), "report(ok=1)")
    except OSError as exc:
        return exc
    finally:
        be.close()
    return None


@pytest.mark.parametrize(
    "link, masked, seen",
    [
        ("/etc", "hosts", "report(masked=open('/etc/hosts').read(), device=stat.S_ISCHR(os.stat('/etc/hosts').st_mode))"),
        ("/", "opt", "report(masked=os.listdir('/opt'), device=os.stat('/opt').st_dev != os.stat('/').st_dev)"),
    ],
    ids=["a file", "a directory"],
)
@needs_root
def test_a_sandbox_mounts_on_what_the_walk_inside_its_new_root_found(tmp_path, monkeypatch, openat2, link, masked, seen):
    # A mask inside a bound tree behind `abs -> /etc` (or `/`): inside the
    # new root that is the root's /etc/hosts, but a mount by path walks from
    # the staging root, where /etc is not: the mask was refused (or, before
    # that, silently left off), and a path there that existed would have
    # taken the mount out of the root. Mounted on the file the walk found,
    # by its fd, it lands on the root's own.
    runtime_extra, code = tmp_path / "extra", tmp_path / "code"
    for d in (runtime_extra, code):
        d.mkdir()
        d.chmod(0o755)
    (runtime_extra / "abs").symlink_to(link)
    real_plan = rootfs.plan
    # Last, once the runtime's views are mounted (hidden dirs come first).
    mask = nsspawn.MountOp(nsspawn.MASK, f"/var/runtime/extra/abs/{masked}")
    monkeypatch.setattr(rootfs, "plan", lambda layout: [*real_plan(layout), mask])
    root = RuntimeRoot.create(tmp_path / "runtime")
    be = NamespacedBackend(root, zygote=False, prepared_root=False)
    be._default.sources = {**be._default.sources, "extra": str(runtime_extra)}
    try:
        got = sandbox_probe.run(be, root.python, str(code), f"import stat\n{seen}").last
    finally:
        be.close()
    assert got == {"masked": [] if masked == "opt" else "", "device": True}, got


@needs_root
def test_without_openat2_a_sandbox_builds_its_root_inside_it(tmp_path, openat2):
    # The walk in user space follows the symlinks a root holds as a process
    # in it would (here a chain of two, inside the bound tree), and a
    # sandbox builds its root and runs as it does with openat2.
    runtime_extra, code, inner = tmp_path / "extra", tmp_path / "code", tmp_path / "inner"
    # The mountpoints there already: the bound tree is read-only.
    for d in (runtime_extra, code, inner, runtime_extra / "real", runtime_extra / "real" / "a", runtime_extra / "real" / "b"):
        d.mkdir()
        d.chmod(0o755)
    (runtime_extra / "in").symlink_to("real")
    (runtime_extra / "twice").symlink_to("in/.")
    (inner / "mark").write_text("inner\n")
    root = RuntimeRoot.create(tmp_path / "runtime")
    be = NamespacedBackend(root, zygote=False, prepared_root=False)
    be._default.sources = {**be._default.sources, "extra": str(runtime_extra), "extra/in/a": str(inner), "extra/twice/b": str(inner)}
    snippet = "report(names=sorted(os.listdir('/var/runtime/extra/real')), mark=open('/var/runtime/extra/real/b/mark').read())"
    try:
        got = sandbox_probe.run(be, root.python, str(code), snippet).last
        assert got == {"names": ["a", "b"], "mark": "inner\n"}, got
    finally:
        be.close()


def _chain(where: pathlib.Path, links: int) -> str:
    """links symlinks in a row in where, the last to real: the first's name."""
    for i in range(links):
        (where / f"c{i}").symlink_to(f"c{i + 1}" if i + 1 < links else "real")
    return "c0"


@pytest.mark.parametrize("way", ["40 links", "41 links", "a loop", "a magic link"])
@needs_root
def test_a_walk_inside_the_root_follows_at_most_40_links_and_no_magic_link(tmp_path, way, openat2):
    runtime_extra, code, inner = tmp_path / "extra", tmp_path / "code", tmp_path / "inner"
    for d in (runtime_extra, code, inner, runtime_extra / "real", runtime_extra / "real" / "a"):
        d.mkdir()
        d.chmod(0o755)
    if way == "a loop":
        (runtime_extra / "esc").symlink_to("esc")
        via = "esc"
    elif way == "a magic link":
        # /proc/self/root is the sandbox's first process's root: the
        # staging root, which holds the host under /oldroot.
        (runtime_extra / "esc").symlink_to(f"/proc/self/root/oldroot{tmp_path}")
        via = "esc"
    else:
        via = _chain(runtime_extra, int(way.split()[0]))
    root = RuntimeRoot.create(tmp_path / "runtime")
    be = NamespacedBackend(root, zygote=False, prepared_root=False)
    be._default.sources = {**be._default.sources, "extra": str(runtime_extra), f"extra/{via}/a": str(inner)}
    try:
        if way == "40 links":
            got = sandbox_probe.run(be, root.python, str(code), "report(names=os.listdir('/var/runtime/extra/real/a'))").last
            assert got == {"names": []}, got
        else:
            with pytest.raises(OSError) as caught:
                sandbox_probe.run(be, root.python, str(code), "report(ok=1)")
            assert caught.value.errno == errno.ELOOP, caught.value
            assert f"mountpoint: parent /var/runtime/extra/{via}/a" in str(caught.value), caught.value
    finally:
        be.close()


@pytest.mark.parametrize("prepared_root", [False, True], ids=["own root", "prepared root"])
@needs_root
def test_a_read_only_bind_of_a_host_tree_is_read_only_in_its_submounts_too(tmp_path, monkeypatch, prepared_root):
    # A host tree with a writable file system mounted inside it (as /usr
    # may hold one): the bind takes it along (MS_REC), and the read-only
    # remount changed only the bind's own mount.
    source, code = tmp_path / "source", tmp_path / "code"
    (source / "sub").mkdir(parents=True)
    code.mkdir()
    for d in (tmp_path, source, code):
        d.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "lambdalet-submount", str(source / "sub")], check=True)
    try:
        real_plan = rootfs.plan
        monkeypatch.setattr(
            rootfs, "plan", lambda layout: [*real_plan(layout), nsspawn.MountOp(nsspawn.BIND_RO, "/srv/tree", src=str(source))]
        )
        root = RuntimeRoot.create(tmp_path / "runtime")
        be = NamespacedBackend(root, zygote=False, prepared_root=prepared_root)
        snippet = """
try:
    open('/srv/tree/sub/written', 'w').close()
    report(written=True)
except OSError as exc:
    report(written=False, errno=exc.errno)
"""
        try:
            got = sandbox_probe.run(be, root.python, str(code), snippet).last
        finally:
            be.close()
        assert got == {"written": False, "errno": errno.EROFS}, got
        assert os.listdir(source / "sub") == []
    finally:
        subprocess.run(["umount", "-l", str(source / "sub")], check=True)
