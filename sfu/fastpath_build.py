"""The cffi definition of the compiled forwarding steps (``sfu._fastpath``).

The C lives in real files: ``sfu/fastpath.h`` (structs, constants and entry points) and
``sfu/fastpath.c`` (the implementation). The package build compiles them: ``setup.py``
names :data:`ffi` in ``cffi_modules``, so ``pip install .``, ``pip install -e .`` (the
extension is put beside the sources) and a wheel or image build all produce
``sfu/_fastpath*.so``; a failed compile fails the install, so a server never runs on the
slow path by accident. The cdef is the header's part between its ``cffi-cdef-begin`` and
``cffi-cdef-end`` markers, so Python sees exactly the declarations the C is compiled with.

Warnings are errors (``-Wall -Wextra -Werror``), for our C and for the wrapper cffi
generates from the cdef.

After editing the C, rebuild in place with ``pip install -e .`` or, quicker,
``python -m sfu.fastpath_build`` (the same definition; it replaces any other
``sfu/_fastpath*.so``, so that an older build of either kind never shadows it).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "fastpath.h"
SOURCES = [HERE / "fastpath.c"]
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror"]


def cdef_text(header: str) -> str:
    """The declarations between the header's cffi markers."""
    begin = header.index("/* cffi-cdef-begin */") + len("/* cffi-cdef-begin */")
    return header[begin:header.index("/* cffi-cdef-end */")]


def make_ffi(relative: bool = True) -> FFI:
    """The definition; paths relative to the working directory (what setuptools wants: it
    builds from the project's root) or absolute (for :func:`build`, which compiles in a
    temporary directory)."""
    def path(p: Path) -> str:
        return os.path.relpath(p) if relative else str(p)

    made = FFI()
    made.cdef(cdef_text(HEADER.read_text()))
    made.set_source("sfu._fastpath", '#include "fastpath.h"',
                    sources=[path(p) for p in SOURCES], include_dirs=[path(HERE)],
                    extra_compile_args=CFLAGS, depends=[path(HEADER)])
    return made


#: what setup.py's cffi_modules names
ffi = make_ffi()


def build(dest: Path | None = None) -> Path:
    """Compile ``sfu._fastpath`` next to this file (or into ``dest``); returns its path."""
    target = dest or HERE
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(make_ffi(relative=False).compile(tmpdir=tmp))
        out = target / built.name
        for older in target.glob("_fastpath*.so"):  # (the package build names it .abi3.so:
            older.unlink()                         # one left beside would shadow or be shadowed)
        shutil.copyfile(built, out)
    return out


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"built {path}")
