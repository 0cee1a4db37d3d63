"""How fast and how precisely the suite turns red on an L0 that loses an L2 register.

    .venv/bin/python bench/broken_l0.py [--fault ctr] [-- PYTEST_ARGS]

Builds the QEMU of this machine (`qemu-system-ppc64 --version`: Debian's source
package, fetched from the machine's own Debian archive) for ppc64-softmmu with
one fault seeded in the API v1 exit path (`FAULTS`: a register of the L2 that
spapr_exit_nested_hv no longer copies back to the L1), then runs the hcall
suite's behavioural rows (default `-k l2-exit`, stopping at the first failure)
against it on one emulated power10 host, and prints the time to the first red
and what the failure says.  The build is cached under $POWERNEST_CACHE/broken-qemu
(about 4 minutes on 2 cores the first time; it needs root for the build packages).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from powernest.lab.apt import debian_archive
from powernest.lab.cache import default_cache

REPO = Path(__file__).resolve().parents[1]
BUILD_PACKAGES = ("libglib2.0-dev", "libpixman-1-dev", "libfdt-dev", "ninja-build",
                  "pkg-config", "python3-venv", "flex", "bison")
SOURCE_FILE = "hw/ppc/spapr_nested.c"
# fault -> (the line of spapr_exit_nested_hv it removes, what it loses)
FAULTS = {
    "ctr": ("    regs->ctr = l2_state.ctr;\n", "the L2's CTR at each API v1 exit"),
    "lr": ("    regs->link = l2_state.lr;\n", "the L2's LR at each API v1 exit"),
}
CONFIGURE = ("--target-list=ppc64-softmmu", "--disable-docs", "--disable-werror",
             "--disable-user", "--disable-tools", "--disable-guest-agent", "--disable-vnc",
             "--disable-sdl", "--disable-gtk", "--disable-opengl", "--disable-slirp",
             "--disable-curl", "--disable-capstone", "--enable-fdt=system",
             "--disable-install-blobs")   # Debian's source has no firmware blobs
# Debian's source has no python/wheels: the build's Python gets these from PyPI.
BUILD_PYTHON_PACKAGES = ("meson==1.5.0", "pycotap==1.3.1")


def log(text: str) -> None:
    print(f"broken-l0: {text}", flush=True)


def qemu_version() -> str:
    """The Debian version of this machine's QEMU, e.g. 1:10.0.2+ds-2+deb13u1~bpo12+1."""
    said = subprocess.run(["qemu-system-ppc64", "--version"], capture_output=True, text=True,
                          check=True).stdout
    match = re.search(r"\(Debian ([^)]+)\)", said)
    if not match:
        sys.exit(f"broken-l0: not a Debian QEMU: {said.splitlines()[0]}")
    return match[1]


def fetch_source(version: str, dest: Path) -> Path:
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


def build(fault: str) -> Path:
    """qemu-system-ppc64 with `fault` seeded, built once and cached."""
    version = qemu_version()
    work = default_cache() / "broken-qemu" / f"{version.replace(':', '_')}-{fault}"
    binary = work / "build" / "qemu-system-ppc64"
    if binary.exists():
        return binary
    work.mkdir(parents=True, exist_ok=True)
    missing = [p for p in BUILD_PACKAGES if subprocess.run(
        ["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        log(f"installing {' '.join(missing)} ...")
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                       check=True)
    tree = fetch_source(version, work)
    source = tree / SOURCE_FILE
    line, _ = FAULTS[fault]
    text = source.read_text()
    if line not in text:
        sys.exit(f"broken-l0: {SOURCE_FILE} of {version} has no line {line.strip()!r}")
    source.write_text(text.replace(line, "    /* fault seeded by powernest */\n", 1))
    log(f"seeded: {SOURCE_FILE} no longer runs {line.strip()!r}")
    (work / "build").mkdir(exist_ok=True)
    t0 = time.monotonic()
    python = work / "python" / "bin" / "python3"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(work / "python")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *BUILD_PYTHON_PACKAGES],
                       check=True)
    log("configuring (ppc64-softmmu) ...")
    subprocess.run([str(tree / "configure"), f"--python={python}", *CONFIGURE],
                   cwd=work / "build", check=True, stdout=subprocess.DEVNULL)
    log("building qemu-system-ppc64 (about 4 minutes on 2 cores) ...")
    subprocess.run(["ninja", "qemu-system-ppc64"], cwd=work / "build", check=True,
                   stdout=subprocess.DEVNULL)
    log(f"built {binary} in {time.monotonic() - t0:.0f} s")
    return binary


def first_red(junit: Path) -> tuple[str, float, str] | None:
    """The first failed (or errored) case of a run: its name, the run's time up to its
    end, its message."""
    elapsed = 0.0
    for case in ET.parse(junit).iter("testcase"):
        elapsed += float(case.get("time", 0))
        red = case.find("failure")
        red = red if red is not None else case.find("error")
        if red is not None:
            return case.get("name", "?"), elapsed, red.get("message", "")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=sorted(FAULTS), default="ctr")
    parser.add_argument("pytest_args", nargs="*", default=["-k", "l2-exit", "-x"])
    args = parser.parse_args()
    binary = build(args.fault)
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "hosts.yaml"
        inventory.write_text(f"hosts:\n  - name: broken-{args.fault}\n    kind: tcg\n"
                             f"    cpu: power10\n    qemu: {binary}\n"
                             "    qemu_data_dir: /usr/share/qemu\n")
        reports = Path(tmp) / "reports"
        log(f"running {' '.join(args.pytest_args)} against it: {FAULTS[args.fault][1]} lost")
        t0 = time.monotonic()
        subprocess.run([str(REPO / ".venv" / "bin" / "pytest"), str(REPO / "suites"),
                        "--inventory", str(inventory), "--reports", str(reports), "-q",
                        "-p", "no:cacheprovider", *args.pytest_args], cwd=REPO)
        wall = time.monotonic() - t0
        junit = next(reports.glob("*/junit.xml"), None)
        red = first_red(junit) if junit else None
        if red is None:
            log(f"no red in {wall:.0f} s: the fault went unseen")
            return
        name, elapsed, message = red
        log(f"first red after {elapsed:.1f} s of cases ({wall:.0f} s wall, L0 start included): "
            f"{name}")
        log(f"it says: {message[:600]}")
        shutil.rmtree(reports, ignore_errors=True)


if __name__ == "__main__":
    main()
