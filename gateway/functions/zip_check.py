"""Whether a deployment package is a zip Lambda would take, checked from
its central directory before a byte is extracted: names that stay inside
the function's directory, links that resolve inside it (through the zip's
own links too), no duplicates, declared sizes and entry counts within
limits, no encryption, only stored and deflated entries.

Pure: reads the zip from memory, writes nothing. Refusals are CodeError,
with Lambda's wording where Lambda has one.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib

import msgspec

# Lambda's own limit for a function's unzipped code (250 MiB).
MAX_UNZIPPED_BYTES = 262_144_000
# Large dependency bundles (numpy + pandas + scipy) hold ~20k files; a zip
# with more than this is an attack on the extractor, not a function.
MAX_ENTRIES = 100_000
# Linux's limits; checked up front so that a long name is the user's 400,
# not an ENAMETOOLONG half-way through extraction.
_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 4000
# A symlink target is stored as the entry's data; PATH_MAX bounds it.
_MAX_LINK_TARGET = 4095
# Links may point at links; the kernel gives up at 40, and so do we.
_MAX_LINK_DEPTH = 40

NOT_A_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."

_DRIVE_RE = re.compile(r"[A-Za-z]:")
# Only these: zipfile inflates bzip2 and lzma in one unbounded call, so a
# few kilobytes of either can demand gigabytes of memory before any size
# check runs. Deflate is bounded per read, and it is what every tool writes.
_SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


class CodeError(Exception):
    """A deployment package that Lambda would refuse; ``message`` is Lambda-style."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Entry(msgspec.Struct, frozen=True):
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    kind: str  # "file", "dir" or "link"
    mode: int


def _unix_mode(info: zipfile.ZipInfo) -> int:
    # Only zips made on Unix carry a Unix mode in the high 16 bits; elsewhere
    # they hold DOS attributes or garbage. Ignoring them is the safe side: a
    # would-be symlink is then written as a plain file.
    if info.create_system != 3:
        return 0
    return info.external_attr >> 16


def _split_name(name: str) -> tuple[str, ...]:
    if "\x00" in name:
        raise CodeError(f"Invalid file name in zip: {name!r}.")
    # Windows tools sometimes write backslashes; treat them as separators so
    # that "..\\x" is seen for what it is.
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE_RE.match(unified):
        raise CodeError(f"Zip entry has an absolute path: {name!r}.")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if ".." in parts:
        raise CodeError(f"Zip entry leaves the function's directory: {name!r}.")
    if len("/".join(parts).encode()) > _MAX_PATH_BYTES or any(len(p.encode()) > _MAX_COMPONENT_BYTES for p in parts):
        raise CodeError(f"Zip entry name is too long: {name[:80]!r}...")
    return parts


def _classify(info: zipfile.ZipInfo, parts: tuple[str, ...]) -> Entry:
    mode = _unix_mode(info)
    fmt = stat.S_IFMT(mode)
    if info.is_dir() or fmt == stat.S_IFDIR:
        kind = "dir"
    elif fmt == stat.S_IFLNK:
        kind = "link"
    elif fmt in (0, stat.S_IFREG):
        kind = "file"
    else:
        raise CodeError(f"Zip entry is not a file, directory or symbolic link: {info.filename!r}.")
    if kind != "dir" and not parts:
        raise CodeError(f"Invalid file name in zip: {info.filename!r}.")
    return Entry(info, parts, kind, mode)


def _resolve_in_tree(start: list[str], target: str, links: dict[tuple[str, ...], str], depth: int) -> list[str] | None:
    """Resolve ``target`` from directory ``start`` as the kernel would once the
    tree exists, following the zip's own links. None means it leaves the tree.

    A purely lexical check is not enough: with ``d/s -> ..``, the target
    ``s/../../x`` of ``d/t`` looks harmless but climbs out through ``s``.
    """
    if depth > _MAX_LINK_DEPTH:
        raise CodeError("Symbolic links in the zip form a loop or nest too deeply.")
    if target.startswith("/"):
        return None
    here = list(start)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not here:
                return None
            here.pop()
            continue
        here.append(part)
        inner = links.get(tuple(here))
        if inner is not None:
            resolved = _resolve_in_tree(here[:-1], inner, links, depth + 1)
            if resolved is None:
                return None
            here = resolved
    return here


def _read_link_target(zf: zipfile.ZipFile, entry: Entry) -> str:
    if entry.info.file_size > _MAX_LINK_TARGET:
        raise CodeError(f"Symbolic link target is too long: {entry.info.filename!r}.")
    raw = zf.read(entry.info)
    try:
        target = raw.decode()
    except UnicodeDecodeError:
        raise CodeError(f"Symbolic link target is not UTF-8: {entry.info.filename!r}.") from None
    if not target or "\x00" in target:
        raise CodeError(f"Invalid symbolic link target: {entry.info.filename!r}.")
    return target


def _check_entries(zf: zipfile.ZipFile, max_unzipped: int) -> list[Entry]:
    infos = zf.infolist()
    if not infos:
        raise CodeError("Uploaded file must be a non-empty zip")
    if len(infos) > MAX_ENTRIES:
        raise CodeError(f"Zip has {len(infos)} entries; at most {MAX_ENTRIES} are allowed.")
    if sum(i.file_size for i in infos) > max_unzipped:
        raise CodeError(f"Unzipped size must be smaller than {max_unzipped} bytes")

    entries: list[Entry] = []
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        if info.flag_bits & 0x1:
            raise CodeError(f"Zip entry is encrypted: {info.filename!r}. Encrypted zips are not supported.")
        if info.compress_type not in _SUPPORTED_METHODS:
            raise CodeError(f"{NOT_A_ZIP} Unsupported compression method in {info.filename!r}; use deflate.")
        entry = _classify(info, _split_name(info.filename))
        if entry.parts in seen and entry.parts:
            raise CodeError(f"Zip has a duplicate entry: {info.filename!r}.")
        seen.add(entry.parts)
        entries.append(entry)

    non_dirs = {e.parts for e in entries if e.kind != "dir"}
    links = {e.parts for e in entries if e.kind == "link"}
    for e in entries:
        for i in range(1, len(e.parts)):
            prefix = e.parts[:i]
            if prefix in links:
                # Writing through a link would let the link decide where
                # bytes land; links are only ever leaves.
                raise CodeError(f"Zip entry passes through a symbolic link: {e.info.filename!r}.")
            if prefix in non_dirs:
                raise CodeError(f"Zip entry is inside something that is a file: {e.info.filename!r}.")

    targets = {e.parts: _read_link_target(zf, e) for e in entries if e.kind == "link"}
    for parts, target in targets.items():
        if target.startswith("/") or _resolve_in_tree(list(parts[:-1]), target, targets, 0) is None:
            raise CodeError(f"Symbolic link points outside the function's directory: {'/'.join(parts)!r} -> {target!r}.")
    return entries


def _open_zip(data: bytes) -> zipfile.ZipFile:
    # Every central directory entry starts with this signature, so its count
    # bounds the entry count before zipfile builds an object per entry.
    if data.count(b"PK\x01\x02") > MAX_ENTRIES:
        raise CodeError(f"Zip has too many entries; at most {MAX_ENTRIES} are allowed.")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError):
        # ValueError covers UnicodeDecodeError from a mis-flagged name.
        raise CodeError(NOT_A_ZIP) from None


def open_checked(data: bytes, max_unzipped: int) -> tuple[zipfile.ZipFile, list[Entry]]:
    zf = _open_zip(data)
    try:
        return zf, _check_entries(zf, max_unzipped)
    except CodeError:
        zf.close()
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError):
        zf.close()
        raise CodeError(NOT_A_ZIP) from None


def validate_zip(data: bytes, *, max_unzipped: int = MAX_UNZIPPED_BYTES) -> list[zipfile.ZipInfo]:
    """Check a deployment package without writing anything; raise CodeError.

    Refuses non-zips, absolute or climbing names, links that leave the tree,
    duplicates, declared sizes over ``max_unzipped``, too many entries,
    encryption, and compression methods other than stored and deflate. Sizes
    that headers under-declare are caught during extraction.
    """
    zf, entries = open_checked(data, max_unzipped)
    zf.close()
    return [e.info for e in entries]


def regular_size(entries: list[Entry]) -> int:
    """The bytes of the regular files, as their headers declare them."""
    return sum(e.info.file_size for e in entries if e.kind == "file")
