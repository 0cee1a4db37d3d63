"""qemu-system-ppc64 built here from Debian's source package of this machine's own QEMU
(`qemu-system-ppc64 --version`), fetched from the machine's Debian archive: with a fault
seeded in its source (bench/broken_l0.py) or with AddressSanitizer (`powernest lab qemu
--asan`, for hcall campaigns' `--qemu`).  Each variant is built once, under
$POWERNEST_CACHE/qemu-builds/<Debian version>-<variant>/; the build packages need root.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from powernest.lab.apt import debian_archive
from powernest.lab.cache import default_cache
from powernest.lab.errors import LabBuildError

BUILD_PACKAGES = ("libglib2.0-dev", "libpixman-1-dev", "libfdt-dev", "ninja-build",
                  "pkg-config", "python3-venv", "flex", "bison")
CONFIGURE = ("--target-list=ppc64-softmmu", "--disable-docs", "--disable-werror",
             "--disable-user", "--disable-tools", "--disable-guest-agent", "--disable-vnc",
             "--disable-sdl", "--disable-gtk", "--disable-opengl", "--disable-slirp",
             "--disable-curl", "--disable-capstone", "--enable-fdt=system",
             "--disable-install-blobs")   # Debian's source has no firmware blobs
ASAN = ("--enable-asan",)
# Debian's source has no python/wheels: the build's Python gets these from PyPI.
BUILD_PYTHON_PACKAGES = ("meson==1.5.0", "pycotap==1.3.1")
# Where a built QEMU finds its firmware (SLOF): Debian's own package installs it here.
DATA_DIR = "/usr/share/qemu"


def debian_qemu_version() -> str:
    """The Debian version of this machine's QEMU, e.g. 1:10.0.2+ds-2+deb13u1~bpo12+1."""
    try:
        said = subprocess.run(["qemu-system-ppc64", "--version"], capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LabBuildError(f"qemu-system-ppc64 --version failed ({exc}): install Debian's "
                            "qemu-system-ppc (make setup)") from None
    match = re.search(r"\(Debian ([^)]+)\)", said)
    if not match:
        raise LabBuildError(f"not a Debian QEMU: {said.splitlines()[0]}")
    return match[1]


def _fetch_source(version: str, dest: Path, log: Callable[[str], None]) -> Path:
    """The upstream source of Debian's qemu `version` (its .orig tarball), unpacked anew."""
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    base = debian_archive().uris[0].rstrip("/") + "/pool/main/q/qemu/"
    name = f"qemu_{upstream}.orig.tar.xz"
    tarball = dest / name
    if not tarball.exists():
        log(f"fetching {name} from the machine's Debian archive ...")
        with urllib.request.urlopen(base + name, timeout=600) as answer:   # noqa: S310
            tarball.write_bytes(answer.read())
    tree = dest / "src"
    shutil.rmtree(tree, ignore_errors=True)   # a fault is seeded in a fresh copy
    shutil.rmtree(dest / "unpack", ignore_errors=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(dest / "unpack", filter="tar")
    (top,) = (dest / "unpack").iterdir()
    top.rename(tree)
    return tree


def _install_build_packages(log: Callable[[str], None]) -> None:
    missing = [p for p in BUILD_PACKAGES if subprocess.run(
        ["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        log(f"installing {' '.join(missing)} ...")
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                       check=True)


def build(variant: str, *, seed: Callable[[Path], None] | None = None,
          configure: Sequence[str] = (), log: Callable[[str], None] = print) -> Path:
    """qemu-system-ppc64 of this machine's Debian version, `seed` applied to its source
    tree and `configure` added to its options; built once per `variant` and cached."""
    version = debian_qemu_version()
    work = default_cache() / "qemu-builds" / f"{version.replace(':', '_')}-{variant}"
    binary = work / "build" / "qemu-system-ppc64"
    if binary.exists():
        return binary
    work.mkdir(parents=True, exist_ok=True)
    try:
        _install_build_packages(log)
        tree = _fetch_source(version, work, log)
        if seed is not None:
            seed(tree)
        (work / "build").mkdir(exist_ok=True)
        t0 = time.monotonic()
        python = work / "python" / "bin" / "python3"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(work / "python")], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *BUILD_PYTHON_PACKAGES],
                           check=True)
        log(f"configuring {variant} (ppc64-softmmu{', ' if configure else ''}"
            f"{' '.join(configure)}) ...")
        subprocess.run([str(tree / "configure"), f"--python={python}", *CONFIGURE, *configure],
                       cwd=work / "build", check=True, stdout=subprocess.DEVNULL)
        log("building qemu-system-ppc64 (4 to 10 minutes on 2 cores) ...")
        subprocess.run(["ninja", "qemu-system-ppc64"], cwd=work / "build", check=True,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LabBuildError(f"building QEMU {version} ({variant}) failed: {exc}") from None
    log(f"built {binary} in {time.monotonic() - t0:.0f} s")
    return binary


def asan(log: Callable[[str], None] = print) -> Path:
    """qemu-system-ppc64 built with AddressSanitizer."""
    return build("asan", configure=ASAN, log=log)
