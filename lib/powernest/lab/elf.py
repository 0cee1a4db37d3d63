"""The shared-library closure of ELF64 programs inside a foreign-architecture root.

Reads `DT_NEEDED` and `PT_INTERP` from the program headers (no binutils needed)
and resolves each soname in the root's library directories, following symbolic
links inside the root, never on the host.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from powernest.lab.errors import LabBuildError

LIBDIRS = ("lib/powerpc64le-linux-gnu", "usr/lib/powerpc64le-linux-gnu", "lib64", "lib", "usr/lib")

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5


def _cstring(data: bytes, offset: int) -> str:
    return data[offset:data.index(b"\0", offset)].decode()


def dynamic_info(path: Path) -> tuple[list[str], str | None]:
    """The `DT_NEEDED` sonames and the `PT_INTERP` path (None if static) of an ELF64 file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise LabBuildError(f"{path} is not an ELF64 file")
    e = "<" if data[5] == 1 else ">"
    (phoff,) = struct.unpack_from(e + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(e + "HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    interp: str | None = None
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz, _, _ = struct.unpack_from(
            e + "IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif p_type == _PT_INTERP:
            interp = _cstring(data, offset)
    if dynamic is None:
        return [], interp
    needed: list[int] = []
    strtab = None
    for tag, value in struct.iter_unpack(e + "qQ", data[dynamic[0]:sum(dynamic)]):
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed.append(value)
        elif tag == _DT_STRTAB:
            strtab = value
    if strtab is None:
        raise LabBuildError(f"{path}: dynamic section without a string table")
    base = next((off + strtab - va for va, off, size in loads if va <= strtab < va + size), None)
    if base is None:
        raise LabBuildError(f"{path}: string table outside the loaded segments")
    return [_cstring(data, base + n) for n in needed], interp


def resolve_in(root: Path, path: str) -> Path:
    """The host path of `path` inside `root`, following symlinks (in any component)
    inside the root, never out of it."""
    todo = list(PurePosixPath("/", path).parts[1:])
    resolved: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            resolved = resolved[:-1]
            continue
        if part == ".":
            continue
        host = root.joinpath(*resolved, part)
        if not host.is_symlink():
            resolved.append(part)
            continue
        hops += 1
        if hops > 40:
            raise LabBuildError(f"too many symbolic links resolving {path} in {root}")
        target = PurePosixPath(os.readlink(host))
        if target.is_absolute():
            resolved = []
        todo = [p for p in target.parts if p != "/"] + todo
    return root.joinpath(*resolved)


def find_library(root: Path, soname: str) -> Path | None:
    """The resolved file of `soname` in the root's library directories, if any."""
    for libdir in LIBDIRS:
        found = resolve_in(root, f"{libdir}/{soname}")
        if found.is_file():
            return found
    return None


def library_closure(root: Path, programs: Iterable[Path]) -> dict[str, Path]:
    """Every library the programs need, recursively, with each program's interpreter:
    soname -> resolved host file.  Raises `LabBuildError` naming any that are missing."""
    found: dict[str, Path] = {}
    missing: set[str] = set()
    todo = list(programs)
    while todo:
        needed, interp = dynamic_info(todo.pop())
        if interp is not None:
            needed.append(PurePosixPath(interp).name)
        for soname in needed:
            if soname in found or soname in missing:
                continue
            library = find_library(root, soname)
            if library is None:
                missing.add(soname)
            else:
                found[soname] = library
                todo.append(library)
    if missing:
        raise LabBuildError(
            f"libraries not found in the unpacked packages under {root}: "
            f"{', '.join(sorted(missing))}; the package closure is incomplete")
    return found
