"""pnhcall.ko in an L1: install it, and talk to it through /proc/pnhcall.

Everything goes through a `Runner`, so an L1 driven over its serial console
(`ConsoleShell`, which cannot copy files) works like one over SSH: `upload`
sends a file as base64 in short command lines and checks its MD5 in the L1.
`install` refuses a module built for another kernel before trying it (the
vermagic's release against `uname -r`); `insmod` is the final judge, and its
refusal comes back with the kernel's own words from dmesg.  `build_on_host`
builds the module on the machine that loads it, as DKMS does, when that
machine has a compiler and its kernel's headers.

The module's interface (see module/pnhcall.c): one command per write, the
result line of the last command on read.  `command` sends one and returns its
result; `call`, `alloc`, `write`, `read` and `free` wrap the five commands.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from powernest.errors import PowernestError
from powernest.hcalls.language import MAX_READ, MODULE_NAME, PROC
from powernest.lab import module
from powernest.shell import Runner

BUILD_DIR = "/var/tmp/powernest"   # where a host's own builds of the module are kept
BUILD_TIMEOUT = 900.0
CHUNK = 1000          # base64 characters per command line of a long upload
LINE = 3000           # base64 characters an upload sends in one command (a tty line: 4095)
WRITE_CHUNK = 480     # bytes per `write` command, 960 hex digits
_U64 = (1 << 64) - 1
_RESULT = "PNHCALL-RESULT "
_CALL = re.compile(r"rc=(-?\d+)((?: r\d+=0x[0-9a-f]+){9})(?: .*)?")
_ALLOC = re.compile(r"addr=0x([0-9a-f]+) size=(\d+)")


class HcallError(PowernestError):
    """The module could not be installed, or it refused a command."""


class CannotBuild(HcallError):
    """The host cannot build the module for its kernel: what it lacks, or how make failed."""


@dataclass(frozen=True)
class OnHost:
    """pnhcall.ko built on the machine it loads into (`build_on_host`)."""

    path: str
    release: str


# What building a module needs on the host, checked before anything is copied there.
_CAN_BUILD = r'''lacks() { echo "$1"; exit 3; }
command -v make >/dev/null || lacks "no make"
command -v gcc >/dev/null || command -v cc >/dev/null || lacks "no C compiler (gcc or cc)"
[ -f "/lib/modules/$1/build/Makefile" ] ||
    lacks "no /lib/modules/$1/build/Makefile (the kernel's headers)"
[ -f "$2/pnhcall.ko" ] && echo built || echo buildable
'''


@dataclass(frozen=True)
class HcallResult:
    """What an hcall returned: its return code and R4..R12."""

    rc: int
    regs: tuple[int, ...]

    @property
    def r4(self) -> int:
        return self.regs[0]


def vermagic(ko_path: Path) -> str:
    """The module's version magic, e.g. '6.12.95+deb12-powerpc64le SMP mod_unload ...'."""
    return module.vermagic(ko_path.read_bytes())


def build_on_host(runner: Runner, release: str) -> OnHost:
    """pnhcall.ko built on the host for its kernel `release` with the host's compiler and
    `/lib/modules/<release>/build`, in a directory named by the module's source and the
    release (a later run finds it built).  `CannotBuild` saying what the host lacks, or
    how the build failed."""
    digest = hashlib.sha256(b"".join(
        p.name.encode() + b"\0" + p.read_bytes() for p in sorted(module.SOURCE.iterdir())
        if p.is_file())).hexdigest()[:12]
    work = f"{BUILD_DIR}/pnhcall-{digest}-{release}"
    said = runner.run(["sh", "-c", _CAN_BUILD, "sh", release, work])
    if not said.ok:
        raise CannotBuild((said.stdout + said.stderr).strip() or f"exit {said.exit_code}")
    if said.stdout.strip() != "built":
        runner.run(["mkdir", "-p", work], check=True)
        for source in sorted(module.SOURCE.iterdir()):
            if source.is_file():
                upload(runner, source.read_bytes(), f"{work}/{source.name}")
        made = runner.run(["make", "-C", f"/lib/modules/{release}/build", f"M={work}",
                           "modules"], timeout=BUILD_TIMEOUT)
        if not made.ok:
            tail = (made.stderr.strip() or made.stdout.strip())[-1500:]
            raise CannotBuild(f"make in {work} failed (exit {made.exit_code}): {tail}")
    return OnHost(f"{work}/{module.HCALL_MODULE}", release)


def loaded(runner: Runner) -> bool:
    return runner.run(["grep", "-q", f"^{MODULE_NAME} ", "/proc/modules"]).ok


def install(runner: Runner, ko: Path | OnHost, dest: str = "/tmp/pnhcall.ko",
            allow: Sequence[int] = ()) -> None:
    """Load pnhcall.ko into the L1 unless it is loaded already: one built there
    (`OnHost`), else the copy the lab's L1 image carries in the module tree if it is
    this one, else uploaded.  `allow`: hcalls it may make besides the nested APIs'."""
    if loaded(runner):
        return
    params = [f"allow={','.join(f'{n:#x}' for n in allow)}"] if allow else []
    release = ko.release if isinstance(ko, OnHost) else vermagic(ko).split(" ")[0]
    running = runner.run(["uname", "-r"], check=True).stdout.split()
    if release not in running:
        raise HcallError(f"{module.HCALL_MODULE} is built for {release}; the L1 runs "
                         f"{' '.join(running) or 'an unknown kernel'}")
    if isinstance(ko, OnHost):
        done = runner.run(["insmod", ko.path, *params])
    else:
        data = ko.read_bytes()
        carried = f"/lib/modules/{release}/{ko.name}"
        if _md5_of(runner, carried) == hashlib.md5(data).hexdigest():  # noqa: S324 - identity
            done = runner.run(["insmod", carried, *params])
        else:
            upload(runner, data, dest)
            done = runner.run(["insmod", dest, *params])
            runner.run(["rm", "-f", dest])
    if not done.ok:
        said = runner.run(["sh", "-c", "dmesg | grep -i pnhcall | tail -n 5"]).stdout
        raise HcallError(f"insmod {module.HCALL_MODULE} failed: "
                         f"{(done.stdout + done.stderr).strip()}\n{said.strip()}")


def unload(runner: Runner) -> None:
    """Unload pnhcall.ko if it is loaded (it keeps what the L0 may still hold)."""
    if loaded(runner):
        done = runner.run(["rmmod", MODULE_NAME])
        if not done.ok:
            raise HcallError(f"rmmod {MODULE_NAME} failed: {(done.stdout + done.stderr).strip()}")


def _md5_of(runner: Runner, path: str) -> str:
    return _md5_in(runner.run(["sh", "-c", 'md5sum "$1" 2>/dev/null', "sh", path]).stdout)


def _md5_in(said: str) -> str:
    match = re.search(r"^([0-9a-f]{32})\s", said, re.M)
    return match[1] if match else ""


def upload(runner: Runner, data: bytes, dest: str) -> None:
    """Write `data` to `dest` in the L1, gzipped and in base64: in one command where that
    fits on a line (`LINE` characters: most case scripts), else in lines of `CHUNK`;
    checked by md5.  (Each command costs the L1 a round trip on its console and a few
    forks: a case's script took seven.)"""
    text = base64.b64encode(gzip.compress(data, mtime=0)).decode()
    if len(text) <= LINE:
        said = runner.run(["sh", "-c", 'printf %s "$1" | base64 -d | gunzip > "$2" && '
                                       'md5sum "$2"', "sh", text, dest]).stdout
    else:
        encoded = f"{dest}.b64"
        runner.run(["rm", "-f", encoded], check=True)
        for start in range(0, len(text), CHUNK):
            runner.run(["sh", "-c", 'printf %s "$1" >> "$2"', "sh", text[start:start + CHUNK],
                        encoded], check=True)
        said = runner.run(["sh", "-c", 'base64 -d < "$1" | gunzip > "$2" && rm -f "$1" && '
                                       'md5sum "$2"', "sh", encoded, dest]).stdout
    digest = hashlib.md5(data).hexdigest()  # noqa: S324 - integrity, not security
    if (arrived := _md5_in(said)) != digest:
        raise HcallError(f"{dest} arrived damaged in the L1 (md5 {arrived or 'unreadable'}, "
                         f"expected {digest})")


def command(runner: Runner, line: str, timeout: float | None = None) -> str:
    """Send one command to /proc/pnhcall and return its result line.

    `HcallError` when the module refused it ("error: ...") or is not there.
    """
    script = f'printf "%s\\n" "$1" > {PROC} 2>/dev/null; printf "{_RESULT}%s\\n" "$(cat {PROC})"'
    said = runner.run(["sh", "-c", script, "sh", line], timeout=timeout).stdout
    match = re.search(rf"^{_RESULT}(.+)$", said, re.M)
    if not match:
        raise HcallError(f"`{line}`: no result from {PROC} (is {MODULE_NAME} loaded?): "
                         f"{said.strip()[-500:]}")
    if match[1].startswith("error:"):
        raise HcallError(f"`{line}`: {match[1]}")
    return match[1]


def call(runner: Runner, opcode: int, *args: int) -> HcallResult:
    """Make hcall `opcode` with up to nine arguments (negative ones as two's complement)."""
    line = command(runner, " ".join(["call", *(f"{n & _U64:#x}" for n in (opcode, *args))]))
    match = _CALL.fullmatch(line)
    if not match:
        raise HcallError(f"unexpected call result: {line!r}")
    regs = tuple(int(value, 16) for value in re.findall(r"=0x([0-9a-f]+)", match[2]))
    return HcallResult(int(match[1]), regs)


def alloc(runner: Runner, buffer: int, size: int) -> int:
    """Allocate buffer `buffer` (0..15) of `size` bytes; its real address."""
    match = _ALLOC.fullmatch(command(runner, f"alloc {buffer} {size}"))
    if not match:
        raise HcallError(f"unexpected alloc result for buffer {buffer}")
    return int(match[1], 16)


def write(runner: Runner, buffer: int, offset: int, data: bytes) -> None:
    """Write `data` into buffer `buffer` at `offset`."""
    for start in range(0, len(data), WRITE_CHUNK):
        piece = data[start:start + WRITE_CHUNK].hex()
        command(runner, f"write {buffer} {offset + start} {piece}")


def read(runner: Runner, buffer: int, offset: int, length: int) -> bytes:
    """`length` bytes of buffer `buffer` from `offset`."""
    data = b""
    for start in range(offset, offset + length, MAX_READ):
        size = min(MAX_READ, offset + length - start)
        data += bytes.fromhex(command(runner, f"read {buffer} {start} {size}"))
    return data


def free(runner: Runner, buffer: int) -> None:
    command(runner, f"free {buffer}")
