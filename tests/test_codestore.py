"""Function code storage: every refusal leaves nothing behind, anywhere."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pathlib
import stat
import struct
import zipfile

import pytest

from lambdalet.gateway.functions import zip_check
from lambdalet.gateway.functions.codestore import CodeError, CodeStore, validate_zip

NOT_A_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
SMALL_LIMIT = 1 << 20


class Entry:
    """One zip member: a file, a directory or a symlink."""

    def __init__(
        self, name: str, data: bytes = b"", *, mode: int = 0o644, link: str | None = None, compress: int = zipfile.ZIP_DEFLATED
    ) -> None:
        self.name, self.data, self.mode, self.link = name, data, mode, link
        self.compress = compress


def make_zip(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.name)
            info.create_system = 3
            info.compress_type = e.compress
            if e.link is not None:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                data = e.link.encode()
            elif e.name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
                data = b""
            else:
                info.external_attr = (stat.S_IFREG | e.mode) << 16
                data = e.data
            zf.writestr(info, data)
    return buf.getvalue()


def snapshot(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def world(tmp_path: pathlib.Path):
    """A store nested deep inside tmp_path, and a snapshot of everything."""
    store = CodeStore(tmp_path / "data" / "code", max_unzipped=SMALL_LIMIT)
    before = snapshot(tmp_path)

    def assert_untouched() -> None:
        assert snapshot(tmp_path) == before
        assert not any((store.root / "blobs").iterdir())
        assert not any((store.root / "trees").iterdir())

    return store, assert_untouched


def refuse(world, data: bytes, match: str) -> None:
    store, assert_untouched = world
    with pytest.raises(CodeError, match=match):
        validate_zip(data, max_unzipped=SMALL_LIMIT)
    with pytest.raises(CodeError, match=match) as info:
        store.put(data)
    assert info.value.message == str(info.value)
    assert_untouched()


# --- refusals -----------------------------------------------------------------


def test_not_a_zip(world):
    refuse(world, b"def handler(event, context): pass\n", NOT_A_ZIP)


def test_empty_upload(world):
    refuse(world, b"", NOT_A_ZIP)


def test_truncated_zip(world):
    data = make_zip(Entry("app.py", b"x = 1\n" * 1000))
    refuse(world, data[: len(data) // 2], NOT_A_ZIP)


def test_zip_slip_dotdot(world):
    refuse(world, make_zip(Entry("ok.py", b"1"), Entry("../x", b"pwned")), "leaves the function's directory")


def test_zip_slip_dotdot_inside_path(world):
    refuse(world, make_zip(Entry("a/b/../../../x", b"pwned")), "leaves the function's directory")


def test_zip_slip_backslashes(world):
    refuse(world, make_zip(Entry("..\\..\\x", b"pwned")), "leaves the function's directory")


def test_absolute_path(world):
    data = make_zip(Entry("/etc/x", b"pwned"))
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["/etc/x"]
    refuse(world, data, "absolute path")


def test_drive_letter(world):
    refuse(world, make_zip(Entry("C:/Windows/x", b"pwned")), "absolute path")


def test_symlink_to_absolute_path(world):
    refuse(world, make_zip(Entry("passwd", link="/etc/passwd")), "outside the function's directory")


def test_symlink_escaping_with_dotdot(world):
    refuse(world, make_zip(Entry("a/b/l", link="../../../etc")), "outside the function's directory")


def test_symlink_escaping_through_another_symlink(world):
    # Lexically "d/s/../../x" stays inside; on disk "s" is the tree's root,
    # so its ".." is the store.
    data = make_zip(Entry("d/s", link=".."), Entry("d/t", link="s/../../x"))
    refuse(world, data, "outside the function's directory")


def test_symlink_loop(world):
    refuse(world, make_zip(Entry("a", link="b/x"), Entry("b", link="a/x")), "loop")


def test_write_through_symlink(world):
    # Even an in-tree link must not decide where another entry's bytes go.
    data = make_zip(Entry("sub/", b""), Entry("l", link="sub"), Entry("l/evil.py", b"1"))
    refuse(world, data, "passes through a symbolic link")


def test_duplicate_names(world):
    refuse(world, make_zip(Entry("app.py", b"1"), Entry("./app.py", b"2")), "duplicate")


def test_file_used_as_directory(world):
    refuse(world, make_zip(Entry("a", b"1"), Entry("a/b", b"2")), "inside something that is a file")


def test_device_entry(world):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("fifo")
        info.create_system = 3
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    refuse(world, buf.getvalue(), "not a file, directory or symbolic link")


def test_honest_header_bomb(world):
    # Deflate turns 2 MiB of zeros into ~2 KiB; the header says 2 MiB.
    refuse(world, make_zip(Entry("bomb", bytes(2 * SMALL_LIMIT))), f"Unzipped size must be smaller than {SMALL_LIMIT} bytes")


def test_honest_header_bomb_spread_over_entries(world):
    entries = [Entry(f"part{i}", bytes(SMALL_LIMIT // 4)) for i in range(5)]
    refuse(world, make_zip(*entries), "Unzipped size must be smaller than")


def _lie_about_sizes(data: bytes, claimed: int) -> bytes:
    """Rewrite every uncompressed-size field (local and central) to ``claimed``."""
    out = bytearray(data)
    pos = 0
    while (pos := out.find(b"PK\x03\x04", pos)) != -1:
        struct.pack_into("<I", out, pos + 22, claimed)
        pos += 4
    pos = 0
    while (pos := out.find(b"PK\x01\x02", pos)) != -1:
        struct.pack_into("<I", out, pos + 24, claimed)
        pos += 4
    return bytes(out)


def test_lying_header_bomb(world):
    data = _lie_about_sizes(make_zip(Entry("bomb", bytes(4 * SMALL_LIMIT))), 100)
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    assert info.file_size == 100 and info.compress_size < 10_000
    store, assert_untouched = world
    validate_zip(data, max_unzipped=SMALL_LIMIT)  # the headers alone look fine
    with pytest.raises(CodeError):
        store.put(data)
    assert_untouched()


def test_extraction_counts_real_bytes(tmp_path, monkeypatch):
    # zipfile itself stops at the declared size, so to see our own counter
    # act we let the headers pass validation against a larger limit.
    data = make_zip(Entry("a", bytes(600_000)), Entry("b", bytes(600_000)))
    real_validate = zip_check.open_checked
    monkeypatch.setattr(zip_check, "open_checked", lambda d, _limit: real_validate(d, 10 * SMALL_LIMIT))
    store = CodeStore(tmp_path / "store", max_unzipped=SMALL_LIMIT)
    with pytest.raises(CodeError, match="Unzipped size must be smaller than"):
        store.put(data)
    assert snapshot(tmp_path / "store") == {"blobs", "trees"}


def _set_encrypted_flag(data: bytes) -> bytes:
    # zipfile cannot write encrypted members, so set bit 0 of the general
    # purpose flags by hand, in the local and the central header.
    out = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(sig)
        (flags,) = struct.unpack_from("<H", out, pos + offset)
        struct.pack_into("<H", out, pos + offset, flags | 0x1)
    return bytes(out)


def test_encrypted_entry(world):
    data = _set_encrypted_flag(make_zip(Entry("secret.py", b"x = 1")))
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x1
    refuse(world, data, "encrypted")


def test_unsupported_compression(world):
    refuse(world, make_zip(Entry("app.py", b"x" * 1000, compress=zipfile.ZIP_BZIP2)), "compression method")


def test_too_many_entries(world, monkeypatch):
    monkeypatch.setattr(zip_check, "MAX_ENTRIES", 10)
    refuse(world, make_zip(*(Entry(f"f{i}", b"") for i in range(11))), "entries")


def test_name_too_long(world):
    refuse(world, make_zip(Entry("a" * 300 + ".py", b"1")), "too long")


def test_default_limit_is_lambdas():
    data = make_zip(Entry("huge", bytes(1)))
    out = _lie_about_sizes(data, 262_144_001)
    with pytest.raises(CodeError, match="^Unzipped size must be smaller than 262144000 bytes$"):
        validate_zip(out)


# --- happy paths --------------------------------------------------------------


def test_nested_dirs_modes_and_exec_bit(tmp_path):
    data = make_zip(
        Entry("app.py", b"def handler(e, c): return 1\n"),
        Entry("pkg/", b""),
        Entry("pkg/sub/deep/mod.py", b"X = 2\n"),
        Entry("bin/tool", b"#!/bin/sh\necho hi\n", mode=0o700),
        Entry("private.txt", b"s", mode=0o600),
    )
    old = os.umask(0o077)
    try:
        stored = CodeStore(tmp_path / "store").put(data)
    finally:
        os.umask(old)
    tree = stored.tree
    assert (tree / "app.py").read_bytes() == b"def handler(e, c): return 1\n"
    assert (tree / "pkg/sub/deep/mod.py").read_bytes() == b"X = 2\n"
    mode = lambda p: stat.S_IMODE(os.lstat(tree / p).st_mode)  # noqa: E731
    assert mode("bin/tool") == 0o755
    assert mode("app.py") == mode("private.txt") == 0o644
    assert mode(".") == mode("pkg") == mode("pkg/sub/deep") == mode("bin") == 0o755
    assert stored.unzipped_size == sum(len(x) for x in (b"def handler(e, c): return 1\n", b"X = 2\n", b"#!/bin/sh\necho hi\n", b"s"))


def test_digests_match_hashlib(tmp_path):
    data = make_zip(Entry("app.py", b"print('hi')\n"))
    stored = CodeStore(tmp_path / "store").put(data)
    digest = hashlib.sha256(data).digest()
    assert stored.sha256_hex == digest.hex()
    assert stored.sha256_b64 == base64.b64encode(digest).decode()
    assert stored.size == len(data)
    assert stored.blob.read_bytes() == data
    assert stored.blob == CodeStore(tmp_path / "store").blob_path(digest.hex())


def test_put_is_idempotent(tmp_path):
    store = CodeStore(tmp_path / "store")
    data = make_zip(Entry("app.py", b"x = 1\n"))
    first = store.put(data)
    marker = os.stat(first.tree / "app.py").st_ino
    second = store.put(data)
    assert first == second
    assert os.stat(second.tree / "app.py").st_ino == marker
    assert store.has(first.sha256_hex)
    assert sorted(p.name for p in (store.root / "trees").iterdir()) == [first.sha256_hex]
    assert sorted(p.name for p in (store.root / "blobs").iterdir()) == [f"{first.sha256_hex}.zip"]


def test_in_tree_symlinks_are_recreated(tmp_path):
    data = make_zip(
        Entry("lib/real.py", b"V = 3\n"),
        Entry("lib/alias.py", link="real.py"),
        Entry("top", link="lib"),
        Entry("dangling", link="missing/file"),
    )
    tree = CodeStore(tmp_path / "store").put(data).tree
    assert os.readlink(tree / "lib/alias.py") == "real.py"
    assert (tree / "top/alias.py").read_bytes() == b"V = 3\n"
    assert os.readlink(tree / "dangling") == "missing/file"


def test_windows_zip_without_unix_modes(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("lib\\mod.py")
        info.create_system = 0
        info.external_attr = 0x20  # FILE_ATTRIBUTE_ARCHIVE
        zf.writestr(info, b"Y = 1\n")
    tree = CodeStore(tmp_path / "store").put(buf.getvalue()).tree
    assert (tree / "lib" / "mod.py").read_bytes() == b"Y = 1\n"
    assert stat.S_IMODE(os.stat(tree / "lib" / "mod.py").st_mode) == 0o644


def test_leftovers_are_removed_at_start(tmp_path):
    store = CodeStore(tmp_path / "store")
    stored = store.put(make_zip(Entry("app.py", b"1")))
    (store.root / "trees" / ".tmp-abc-123").mkdir()
    (store.root / "trees" / ".tmp-abc-123" / "half.py").write_bytes(b"")
    (store.root / "blobs" / ".tmp-abc-123").write_bytes(b"half")
    store = CodeStore(tmp_path / "store")
    assert snapshot(store.root) == {
        "blobs",
        "trees",
        f"blobs/{stored.sha256_hex}.zip",
        f"trees/{stored.sha256_hex}",
        f"trees/{stored.sha256_hex}/app.py",
    }


def test_ensure_tree_rebuilds_from_blob(tmp_path):
    store = CodeStore(tmp_path / "store")
    stored = store.put(make_zip(Entry("app.py", b"z = 9\n")))
    store.delete_unreferenced(set())  # drop both ...
    assert not store.has(stored.sha256_hex)
    stored = store.put(make_zip(Entry("app.py", b"z = 9\n")))
    for p in sorted(stored.tree.rglob("*"), reverse=True):
        p.unlink()
    stored.tree.rmdir()  # ... then only the tree, as after a lost cache
    assert store.ensure_tree(stored.sha256_hex) == stored.tree
    assert (stored.tree / "app.py").read_bytes() == b"z = 9\n"


def test_delete_unreferenced(tmp_path):
    store = CodeStore(tmp_path / "store")
    keep = store.put(make_zip(Entry("a.py", b"1")))
    drop = store.put(make_zip(Entry("b.py", b"2")))
    assert store.delete_unreferenced({keep.sha256_hex}) == [drop.sha256_hex]
    assert store.has(keep.sha256_hex) and keep.tree.is_dir()
    assert not store.has(drop.sha256_hex) and not drop.tree.exists()


def test_paths_refuse_non_digests(tmp_path):
    store = CodeStore(tmp_path / "store")
    for bad in ("../../etc", "A" * 64, "0" * 63):
        with pytest.raises(ValueError):
            store.tree_path(bad)
        with pytest.raises(ValueError):
            store.blob_path(bad)
