"""The root file system: the plan (pure) and layers at /opt (real)."""

from __future__ import annotations

import os

import sandbox_probe

from lambdalet.sandbox import nsspawn, rootfs


def _layout(**kw) -> rootfs.RootLayout:
    fields = dict(python_prefix="/srv/python", runtime_sources={"lambdalet/runtime": "/src/runtime"}, code_dir="/data/code/abc")
    fields.update(kw)
    return rootfs.RootLayout(**fields)


def test_plan_binds_only_what_the_runtime_needs():
    ops = rootfs.plan(_layout())
    sources = {op.src for op in ops if op.kind in (nsspawn.BIND_RO, nsspawn.BIND_DEV, nsspawn.VIEW_RO)}
    assert "/data/code/abc" in sources and "/src/runtime" in sources and "/srv/python" in sources
    # Where the sandbox's path differs from the host's, a view that does not
    # name the host path in /proc/self/mountinfo (the data dir, the install).
    views = {op.dst: op.src for op in ops if op.kind == nsspawn.VIEW_RO}
    assert views == {"/var/task": "/data/code/abc", "/var/runtime/lambdalet/runtime": "/src/runtime"}
    for forbidden in ("/etc", "/etc/shadow", "/root", "/home", "/data", "/proc", "/sys", "/dev"):
        assert forbidden not in sources
    dests = [op.dst for op in ops]
    assert dests.index("/dev/null") < dests.index("/proc/keys")  # masks bind /dev/null
    tmp = [op for op in ops if op.dst == "/tmp"][0]
    assert tmp.kind == nsspawn.TMPFS and "size=512m" in tmp.data and "mode=1777" in tmp.data
    fixed = {op.dst: op.data for op in ops if op.kind == nsspawn.FIXED_FILE}
    assert fixed == {**rootfs.PROC_FIXED, rootfs.BOOT_ID: _layout().boot_id + "\n"}
    # Fixed files go over /proc's entries after /proc/sys is made read-only.
    assert dests.index("/proc/sys") < dests.index(rootfs.BOOT_ID)


def test_plan_sizes_tmp_by_ephemeral_storage_and_stacks_layers():
    ops = rootfs.plan(_layout(ephemeral_mb=10240, layers=("/l/one", "/l/two")))
    assert "size=10240m" in [op for op in ops if op.dst == "/tmp"][0].data
    opt = [op for op in ops if op.dst == "/opt"][0]
    # The last layer wins, as when Lambda extracts them in order.
    assert opt.kind == nsspawn.OVERLAY_RO and opt.data == "lowerdir=/layers/1:/layers/0"
    staged = {op.dst: op.src for op in ops if op.kind == nsspawn.STAGE_BIND}
    assert staged == {"/layers/0": "/l/one", "/layers/1": "/l/two"}


def test_layers_at_opt_later_ones_win(backend, python, code_dir, tmp_path):
    for name, files in (("one", {"a": "1", "shared": "one"}), ("two", {"shared": "two"})):
        layer = tmp_path / name
        layer.mkdir()
        for fname, text in files.items():
            (layer / fname).write_text(text)
    os.chmod(tmp_path, 0o755)
    for path in (tmp_path / "one", tmp_path / "two"):
        os.chmod(path, 0o755)
    snippet = "report(ls=sorted(os.listdir('/opt')), shared=open('/opt/shared').read())"
    single = sandbox_probe.run(backend, python, code_dir, snippet, layers=(str(tmp_path / "one"),))
    assert single.last == {"ls": ["a", "shared"], "shared": "one"}
    both = sandbox_probe.run(backend, python, code_dir, snippet, layers=(str(tmp_path / "one"), str(tmp_path / "two")))
    assert both.last == {"ls": ["a", "shared"], "shared": "two"}


def test_an_interpreter_the_sandbox_would_hide_is_refused():
    import pytest

    assert rootfs.plan(_layout(python_prefix="/opt/python"))  # no layers: /opt stays as bound
    with pytest.raises(ValueError, match="layers"):
        rootfs.plan(_layout(python_prefix="/opt/python", layers=("/l/one",)))
    with pytest.raises(ValueError, match="hidden"):
        rootfs.plan(_layout(python_prefix="/tmp/venv"))
