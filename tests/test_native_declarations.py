"""cffi's view of the spawn configuration is the C compiler's: build_native.py
reads its declarations out of csrc/'s headers, and this compiles a program
against the same headers and compares every struct's size and field
offsets, and the mount kinds' values, with what the built extension holds."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest

from lambdalet.csrc import _native

CSRC = pathlib.Path(_native.__file__).resolve().parent
STRUCTS = ("struct ll_spawn_config", "struct ll_spawn_result", "struct ll_mount_op")


def _c_view(tmp_path: pathlib.Path) -> dict[str, int]:
    """sizeof and offsetof of every field cffi knows, as C computes them."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    ffi = _native.ffi
    lines = []
    for struct in STRUCTS:
        lines.append(f'printf("{struct}=%zu\\n", sizeof({struct}));')
        for field, _ in ffi.typeof(struct).fields:
            lines.append(f'printf("{struct}.{field}=%zu\\n", offsetof({struct}, {field}));')
    for kind in ffi.typeof("enum ll_mount_kind").relements:
        lines.append(f'printf("{kind}=%d\\n", (int){kind});')
    lines.append('printf("LL_SPAWN_IN_WORKER=%d\\n", LL_SPAWN_IN_WORKER);')
    source = tmp_path / "layout.c"
    source.write_text(
        '#include <stddef.h>\n#include <stdio.h>\n#include "spawn.h"\nint main(void) {\n' + "\n".join(lines) + "\nreturn 0;\n}\n"
    )
    program = tmp_path / "layout"
    subprocess.run([cc, "-std=gnu11", "-D_GNU_SOURCE", f"-I{CSRC}", "-o", str(program), str(source)], check=True)
    out = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split("=") for line in out.splitlines())}


def _cffi_view() -> dict[str, int]:
    ffi, lib = _native.ffi, _native.lib
    view = {}
    for struct in STRUCTS:
        view[struct] = ffi.sizeof(struct)
        for field, _ in ffi.typeof(struct).fields:
            view[f"{struct}.{field}"] = ffi.offsetof(struct, field)
    for kind in ffi.typeof("enum ll_mount_kind").relements:
        view[kind] = getattr(lib, kind)
    view["LL_SPAWN_IN_WORKER"] = lib.LL_SPAWN_IN_WORKER
    return view


def test_the_spawn_configuration_has_one_layout_in_c_and_in_python(tmp_path):
    assert _cffi_view() == _c_view(tmp_path)


def test_every_field_of_the_header_reaches_python():
    # A field added to spawn.h without a rebuild (or dropped by the
    # declaration reader) shows up here by name.
    header = re.sub(r"/\*.*?\*/", "", (CSRC / "spawn.h").read_text(), flags=re.S)
    body = header[header.index("struct ll_spawn_config {") : header.index("};", header.index("struct ll_spawn_config {"))]
    declared = [line.split(";")[0].split()[-1].lstrip("*") for line in body.splitlines()[1:] if ";" in line]
    assert [field for field, _ in _native.ffi.typeof("struct ll_spawn_config").fields] == declared
