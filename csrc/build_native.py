"""cffi build script (API mode, out of line) for lambdalet.csrc._native.

Each kernel concern lives in its own .c/.h pair; this file only lists them.
Set LAMBDALET_SANITIZE=1 to build with AddressSanitizer and UBSan.
"""
import os
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["meter.c"]
CDEF = """
uint64_t ll_counter_add(uint64_t *slot, uint64_t delta);
uint64_t ll_counter_load(const uint64_t *slot);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)

_cflags = ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-D_GNU_SOURCE"]
_ldflags: list[str] = []
if os.environ.get("LAMBDALET_SANITIZE") == "1":
    _cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
    _ldflags += ["-fsanitize=address,undefined"]

ffibuilder.set_source(
    "lambdalet.csrc._native",
    '#include "meter.h"\n',
    sources=[str(pathlib.Path("csrc") / s) for s in SOURCES],
    include_dirs=[str(HERE)],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
