"""Kernel modules for the L1: the kernel packages' own, and pnhcall.ko cross-built.

`read_kernel` takes a kernel's vmlinux and `MODULES` from its unpacked
linux-image package.  `build_hcall` cross-builds `hcalls/module` (pnhcall.ko)
for that kernel with kbuild from its Debian packages (`kbuild_packages`: the
ppc64el headers, their common part and the amd64 linux-kbuild, whose host
tools run here) and the cross toolchain installed on this machine.  The lab's
cache key covers the module's source and that toolchain (`recipe`).
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from powernest.lab.errors import LabBuildError

HCALL_MODULE = "pnhcall.ko"
HCALL_SERIES = "6.12"  # the lab's main L1 kernel series: its module is plain pnhcall.ko


def hcall_module_file(series: str, release: str) -> str:
    """The lab's file of pnhcall.ko built for a kernel: `pnhcall.ko` for the main series,
    `pnhcall-<release>.ko` for the others."""
    return HCALL_MODULE if series == HCALL_SERIES else f"pnhcall-{release}.ko"
SOURCE = Path(__file__).resolve().parent.parent / "hcalls" / "module"
CROSS = "powerpc64le-linux-gnu-"
# The programs the build runs from this machine, and the Debian package of each.
TOOLS = {
    f"{CROSS}gcc": "gcc-powerpc64le-linux-gnu",
    f"{CROSS}strip": "binutils-powerpc64le-linux-gnu",
    "pahole": "pahole",
    "make": "make",
}
# The modules an L1 or a twin host loads, by path under the kernel's module tree:
# KVM, and the NICs of the twins (ibmveth on pseries, e1000e on powernv).
MODULES = {
    "kvm": "arch/powerpc/kvm/kvm",
    "kvm-hv": "arch/powerpc/kvm/kvm-hv",
    "ibmveth": "drivers/net/ethernet/ibm/ibmveth",
    "e1000e": "drivers/net/ethernet/intel/e1000e/e1000e",
}
_RELEASE = re.compile(r"linux-image-((\d+\.\d+\.\d+[^-]*(?:-\d+)?)-.+)")


@dataclass(frozen=True)
class Kernel:
    """An unpacked kernel package."""

    package: str
    release: str
    vmlinux: Path
    modules: dict[str, bytes]  # MODULES, decompressed


def read_kernel(package: str, root: Path) -> Kernel:
    """The vmlinux and decompressed `MODULES` of a linux-image package unpacked in `root`."""
    release = package.removeprefix("linux-image-")
    vmlinux = root / "boot" / f"vmlinux-{release}"
    if not vmlinux.is_file():
        raise LabBuildError(f"{package} has no /boot/vmlinux-{release}")
    tree = root / "lib" / "modules" / release / "kernel"
    modules = {}
    for name, path in MODULES.items():
        ko = tree / f"{path}.ko"
        if ko.is_file():
            modules[name] = ko.read_bytes()
        elif ko.with_name(ko.name + ".xz").is_file():
            modules[name] = lzma.decompress(ko.with_name(ko.name + ".xz").read_bytes())
        else:
            raise LabBuildError(f"{package} has no {path}.ko or {path}.ko.xz in {tree}")
    return Kernel(package, release, vmlinux, modules)


def modinfo(data: bytes) -> dict[str, str]:
    """The `.modinfo` fields (name=value) of a kernel module (an ELF64 object)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise LabBuildError("not an ELF64 kernel module")
    e = "<" if data[5] == 1 else ">"
    (shoff,) = struct.unpack_from(e + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A)
    sections = [struct.unpack_from(e + "IIQQQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    names = sections[shstrndx][4]
    for name, _, _, _, offset, size in sections:
        if data[names + name:data.index(b"\0", names + name)] == b".modinfo":
            fields = data[offset:offset + size].split(b"\0")
            return dict(f.decode().partition("=")[::2] for f in fields if b"=" in f)
    raise LabBuildError("no .modinfo section: not a kernel module")


def vermagic(data: bytes) -> str:
    """A module's version magic: the kernel release and the options it must match."""
    return modinfo(data).get("vermagic", "").strip()


def kbuild_packages(image: str, version: str) -> dict[str, str]:
    """Package -> version of what building for linux-image package `image` needs."""
    match = _RELEASE.fullmatch(image)
    if not match:
        raise LabBuildError(f"{image}: not a linux-image-<version>-<flavour> package name")
    release, abi = match.groups()
    # bookworm's 6.1.0-N series has one kbuild per major.minor (linux-kbuild-6.1); later
    # ones (6.12.95+deb12) one per ABI
    old_style = re.fullmatch(r"(\d+\.\d+)\.0-\d+", abi)
    kbuild = f"linux-kbuild-{old_style[1] if old_style else abi}"
    return {f"linux-headers-{release}:ppc64el": version, f"linux-headers-{abi}-common": version,
            f"{kbuild}:amd64": version}


def recipe() -> bytes:
    """What pnhcall.ko is made of besides the lab's own sources: the module's
    files and the version of each program in `TOOLS`."""
    parts = [b"%s:%d:" % (p.name.encode(), p.stat().st_size) + p.read_bytes()
             for p in sorted(SOURCE.iterdir()) if p.is_file()]
    return b"".join(parts) + "\n".join(_version(tool) for tool in TOOLS).encode()


def _version(tool: str) -> str:
    try:
        done = subprocess.run([tool, "--version"], capture_output=True, text=True,
                              errors="replace", timeout=30)
    except OSError:
        return f"{tool}: not installed"
    return f"{tool}: {(done.stdout.strip().splitlines() or [''])[0]}"


def build_hcall(root: Path, release: str, work: Path, dest: Path,
                log: Callable[[str], None], wanted: str | None = None) -> None:
    """Cross-build pnhcall.ko for kernel `release` with kbuild unpacked in `root`, into
    `dest`.  Its vermagic must be `wanted` (the kernel's own kvm-hv.ko's) if given, and
    name `release` in any case.
    """
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise LabBuildError(f"cross-building {HCALL_MODULE} needs the Debian packages "
                            f"{', '.join(missing)}: install them (scripts/setup-system.sh "
                            "does, as root), then build again")
    t0 = time.monotonic()
    headers = root / "usr" / "src" / f"linux-headers-{release}"
    # The arch headers' Makefile includes the common one by its installed, absolute path.
    makefile = headers / "Makefile"
    included = makefile.is_file() and re.search(r"^include /(\S+)$", makefile.read_text(), re.M)
    if not included:
        raise LabBuildError(f"{makefile} is missing or includes no common headers' Makefile")
    shutil.copytree(SOURCE, work)
    log(f"lab: cross-building {HCALL_MODULE} for {release} ...")
    # 6.12's headers name the cross compiler; 6.1's take it from CROSS_COMPILE
    said = _run(["make", "-C", str(headers), "-f", str(root / included[1]), f"M={work}",
                 "ARCH=powerpc", f"CROSS_COMPILE={CROSS}", "modules"])
    for warning in re.findall(r"^.*warning: .*$", said, re.M):
        log(f"lab: {HCALL_MODULE}: {warning}")
    _run([f"{CROSS}strip", "--strip-debug", "-o", str(dest), str(work / HCALL_MODULE)])
    built = vermagic(dest.read_bytes())
    if built.split(" ")[0] != release or (wanted is not None and built != wanted):
        raise LabBuildError(f"{HCALL_MODULE} has vermagic {built!r}, but {release}'s "
                            f"kvm-hv.ko has {wanted or release!r}")
    log(f"lab: built {HCALL_MODULE}: {dest.stat().st_size / 1e3:.1f} kB, vermagic {built!r} "
        f"({time.monotonic() - t0:.1f} s)")


def _run(argv: list[str]) -> str:
    """Run a build step, without the flags of a make we may run under (`make lab`);
    what it said on stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          env={**env, "LC_ALL": "C"})
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise LabBuildError(f"building {HCALL_MODULE}: `{' '.join(argv)}` failed "
                            f"(exit {done.returncode}):\n{tail}")
    return done.stderr
