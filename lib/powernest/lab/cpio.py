"""A newc ("070701") cpio writer, enough for Linux initramfs images, without root.

Entries are collected in a `Tree` (archive path -> entry) and written in sorted
order, so every directory precedes its contents.  Owners are 0:0, mtimes 0 and
inode numbers sequential: the same tree always gives the same bytes.  Device
nodes are plain archive entries, so no `mknod` is needed.
"""

from __future__ import annotations

import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member; `data` is file content (bytes or a host path) or a link target."""

    mode: int  # full st_mode: file type and permission bits
    data: bytes | Path = b""
    rdev: tuple[int, int] = (0, 0)


class Sink(Protocol):
    """Where an archive goes: anything with a binary `write`."""

    def write(self, data: bytes, /) -> object: ...


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


class Tree:
    """The contents of an archive; parent directories are added as needed (0755)."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def _add(self, path: str, entry: Entry) -> None:
        name = str(PurePosixPath("/", path).relative_to("/"))
        if name == ".":
            raise ValueError("cannot add the archive root")
        for parent in reversed(PurePosixPath(name).parents[:-1]):
            self.entries.setdefault(str(parent), Entry(stat.S_IFDIR | 0o755))
        self.entries[name] = entry

    def directory(self, path: str, mode: int = 0o755) -> None:
        self._add(path, Entry(stat.S_IFDIR | mode))

    def file(self, path: str, data: bytes | Path, mode: int | None = None) -> None:
        """A regular file from bytes or a host file; a host file keeps its permission bits."""
        if mode is None:
            mode = stat.S_IMODE(data.stat().st_mode) if isinstance(data, Path) else 0o644
        self._add(path, Entry(stat.S_IFREG | mode, data))

    def symlink(self, path: str, target: str) -> None:
        self._add(path, Entry(stat.S_IFLNK | 0o777, target.encode()))

    def char_device(self, path: str, mode: int, major: int, minor: int) -> None:
        self._add(path, Entry(stat.S_IFCHR | mode, rdev=(major, minor)))

    def write(self, out: Sink) -> int:
        """Write the archive (with its trailer) to `out`; returns the bytes written."""
        written = 0
        for ino, name in enumerate(sorted(self.entries), start=1):
            written += _write_entry(out, ino, name, self.entries[name])
        written += _write_entry(out, 0, _TRAILER, Entry(0))
        return written


def _write_entry(out: Sink, ino: int, name: str, entry: Entry) -> int:
    size = _size(entry)
    encoded = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, size, 0, 0, *entry.rdev, len(encoded), 0)
    header = _MAGIC + b"".join(b"%08X" % f for f in fields) + encoded
    out.write(header + _pad(len(header)))
    if isinstance(entry.data, Path):
        with entry.data.open("rb") as src:
            copied = _copy(src, out)
        if copied != size:
            raise OSError(f"{entry.data} changed size while archiving")
    else:
        out.write(entry.data)
    out.write(_pad(size))
    return len(header) + len(_pad(len(header))) + size + len(_pad(size))


def _size(entry: Entry) -> int:
    if isinstance(entry.data, Path):
        return entry.data.stat().st_size
    return len(entry.data)


def _copy(src: IO[bytes], out: Sink) -> int:
    before = src.tell()
    shutil.copyfileobj(src, out, 1 << 20)
    return src.tell() - before
