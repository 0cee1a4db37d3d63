"""The lab recipe: Debian packages in, boot images for QEMU TCG out.

`build_lab` returns the cached images when they verify; otherwise, holding a
lock on the cache, it
  1. reads the Debian archive address from this machine's apt configuration
     and refreshes a private apt state for bookworm and bookworm-backports;
  2. picks the ppc64el kernels (`KERNELS`) and resolves the ppc64el closure of
     `USERLAND`, then fetches whatever .debs the cache lacks;
  3. unpacks them with `dpkg-deb -x`, writes the kernels, cross-builds pnhcall.ko
     for the L1 kernel (`powernest.lab.module`), writes l2.cpio and then
     l1.cpio (which carries the kernels and l2.cpio) with a manifest
     into a temporary directory, and renames it to `lab/<key>` only when
     complete, so a killed build never leaves a lab that looks finished.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from powernest.lab.apt import DebFile, PrivateApt, debian_archive
from powernest.lab.cache import (
    L1_INITRD,
    L2_INITRD,
    MANIFEST,
    RECIPE_DIR,
    LabImages,
    default_cache,
    file_digest,
    file_record,
    lab_dir,
    load_lab,
    recipe_key,
)
from powernest.lab.cpio import Tree
from powernest.lab.elf import dynamic_info, library_closure, resolve_in
from powernest.lab.errors import LabBuildError
from powernest.lab.module import (
    HCALL_MODULE,
    Kernel,
    build_hcall,
    hcall_module_file,
    kbuild_packages,
    read_kernel,
    recipe,
    vermagic,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class KernelChoice:
    """Which linux-image package to take for a kernel series."""

    suite: str
    pattern: str  # a regular expression the whole package name matches
    preferred: str  # taken if the archive has it, else the newest match


SUITES = ("bookworm", "bookworm-backports")
KERNELS = {
    "6.12": KernelChoice("bookworm-backports", r"linux-image-6\.12\S*-powerpc64le",
                         "linux-image-6.12.95+deb12-powerpc64le"),
    "6.1": KernelChoice("bookworm", r"linux-image-6\.1\.0-\d+-powerpc64le",
                        "linux-image-6.1.0-50-powerpc64le"),
}
USERLAND = ("qemu-system-ppc", "busybox-static", "kexec-tools", "dropbear-bin")
USERLAND_RELEASE = "bookworm-backports"
# Single programs taken from packages without their Depends (they need only
# libc): the SFTP server dropbear runs, and the flock (with -w) that leases use.
STANDALONE = {
    "usr/lib/sftp-server": ("openssh-sftp-server", "usr/lib/openssh/sftp-server"),
    "usr/bin/flock": ("util-linux", "usr/bin/flock"),
}
STANDALONE_RELEASE = "bookworm"
# A second, older L0: bookworm's own QEMU (no cap-nested-papr), unpacked, never installed.
OLD_L0 = ("qemu-system-ppc", "bookworm")
LIBDIR = "lib/powerpc64le-linux-gnu"
FILES = RECIPE_DIR / "files"
# What a distribution's host has that builds modules (with a kernel's headers package):
# make, the compiler its headers name, and the tools kbuild and insmod run.
BUILD_HOST = ("make", "gcc", "kmod", "dash", "coreutils", "sed", "grep", "gawk", "findutils",
              "diffutils")
BUILD_HOST_ROOT = "buildhost"


def build_lab(cache: Path | None = None, force: bool = False, log: Log = print) -> LabImages:
    """The lab images for the current recipe, built unless verified ones are cached."""
    cache = cache or default_cache()
    key = recipe_key()
    dest = lab_dir(cache, key)
    if not force and (lab := load_lab(dest, key)):
        log(f"lab images up to date: {key[:12]} in {dest}")
        return lab
    t0 = time.monotonic()
    try:
        with _locked(cache / "lab", log):
            if not force and (lab := load_lab(dest, key)):
                log(f"lab images up to date: {key[:12]} in {dest} (built meanwhile)")
                return lab
            log(f"lab: building images {key[:12]} in {dest}")
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache / "lab"))
            try:
                _build(cache, key, work, log)
                _install(work / "out", dest)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except (OSError, lzma.LZMAError) as exc:
        raise LabBuildError(f"building the lab images in {cache} failed: {exc}") from exc
    lab = load_lab(dest, key)
    if lab is None:
        raise LabBuildError(f"the lab images just built in {dest} do not verify")
    log(f"lab images ready: {key[:12]} in {dest} ({_secs(t0)})")
    return lab


@contextmanager
def _locked(labs: Path, log: Log) -> Iterator[None]:
    """Hold the cache's build lock; clear what killed builds left behind."""
    labs.mkdir(parents=True, exist_ok=True)
    with (labs / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"lab: waiting for another build in {labs}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in labs.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in labs.glob(".old-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


def _install(out: Path, dest: Path) -> None:
    """Rename the finished `out` to `dest`, replacing an older `dest`."""
    old = dest.with_name(f".old-{dest.name}")
    if dest.exists():
        os.rename(dest, old)
    os.rename(out, dest)
    shutil.rmtree(old, ignore_errors=True)


def _apt(cache: Path, log: Log) -> PrivateApt:
    """The lab's private apt on this machine's Debian archive, its lists up to date."""
    archive = debian_archive()
    log(f"lab: Debian archive {archive.uris[0]} (from {archive.origin})")
    apt = PrivateApt(cache / "apt", archive, SUITES)
    t0 = time.monotonic()
    log(f"lab: apt update ({', '.join(SUITES)}) ...")
    for warning in apt.update():
        log(f"lab: apt update: {warning}")
    log(f"lab: apt update done ({_secs(t0)})")
    return apt


def _build(cache: Path, key: str, work: Path, log: Log) -> None:
    apt = _apt(cache, log)

    available = apt.versions(n for n in apt.pkgnames("linux-image-6.")
                             if any(re.fullmatch(k.pattern, n) for k in KERNELS.values()))
    kernel_packages = {series: _choose_kernel(choice, available, log)
                       for series, choice in KERNELS.items()}
    userland = apt.resolve([f"{p}:ppc64el" for p in USERLAND], USERLAND_RELEASE)
    for package, _ in STANDALONE.values():
        userland.update(_standalone(apt, package, STANDALONE_RELEASE))
    packages = {**dict(kernel_packages.values()), **userland}
    for name in (*USERLAND, *(package for package, _ in STANDALONE.values())):
        log(f"lab: {name} {userland[name]}")
    debs = _fetch(apt, packages, cache / "debs", log)

    kernels, root = _unpack(debs, [name for name, _ in kernel_packages.values()],
                            work / "x", log)
    out = work / "out"
    out.mkdir()
    for series, (name, _) in kernel_packages.items():
        shutil.copyfile(kernels[name].vmlinux, out / f"vmlinux-{series}")
    by_series = {series: kernels[name] for series, (name, _) in kernel_packages.items()}
    packages.update(_old_l0(apt, cache / "debs", work / "x", out, log))
    for series, kernel in by_series.items():   # pnhcall.ko for every L1 kernel
        packages.update(_hcall(apt, kernel_packages[series], kernel, cache / "debs",
                               work / "x", out / hcall_module_file(series, kernel.release),
                               log))
    _write(_l2_tree(root), out / L2_INITRD, log)
    _write(_l1_tree(root, by_series, out), out / L1_INITRD, log)

    manifest = {
        "key": key,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kernel_packages": {s: k.package for s, k in by_series.items()},
        "kernel_releases": {s: k.release for s, k in by_series.items()},
        "packages": dict(sorted((n.split(":")[0], v) for n, v in packages.items())),
        "files": {p.name: file_record(p) for p in sorted(out.iterdir())},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def _old_l0(apt: PrivateApt, debs: Path, x: Path, out: Path, log: Log) -> dict[str, str]:
    """Unpack the host QEMU of `OLD_L0` as out/qemu-system-ppc64-<major.minor>.

    It runs beside the installed QEMU with the system's libraries and needs
    `-L /usr/share/qemu` for its firmware.
    """
    name, suite = OLD_L0
    found = [v for n, v, s in apt.versions([f"{name}:amd64"], arch="amd64")
             if n.split(":")[0] == name and s == suite]
    if not found:
        raise LabBuildError(f"no amd64 {name} in {suite} for the second L0")
    version = found[0]
    deb = _fetch(apt, {f"{name}:amd64": version}, debs, log)[name]
    _dpkg_extract(deb, dest=x / "old-l0")
    series = ".".join(re.split(r"[.+~-]", version.partition(":")[2] or version)[:2])
    shutil.copy2(_existing(x / "old-l0", "usr/bin/qemu-system-ppc64"),
                 out / f"qemu-system-ppc64-{series}")
    log(f"lab: second L0 {name} {version} ({suite}) as qemu-system-ppc64-{series}")
    return {f"{name}:amd64": version}


def _hcall(apt: PrivateApt, package: tuple[str, str], kernel: Kernel, debs: Path, x: Path,
           dest: Path, log: Log) -> dict[str, str]:
    """Build pnhcall.ko for `kernel` (`package`: name, version) as `dest`; the packages
    it took."""
    packages = kbuild_packages(*package)
    _dpkg_extract(*_fetch(apt, packages, debs, log).values(), dest=x / "kbuild")
    build_hcall(x / "kbuild", kernel.release, x / f"pnhcall-{kernel.release}", dest, log,
                wanted=vermagic(kernel.modules["kvm-hv"]))
    return packages


def hcall_module_for(release: str, cache: Path | None = None, log: Log = print) -> Path:
    """pnhcall.ko cross-built for kernel `release` (one the lab has not: an LPAR's own)
    from that kernel's Debian headers packages, cached by release and module source.
    `LabBuildError` if the machine's Debian archive has no headers for it."""
    cache = cache or default_cache()
    source = hashlib.sha256(recipe()).hexdigest()[:12]
    dest = cache / "hcall-modules" / f"{release}-{source}" / HCALL_MODULE
    with _locked(cache / "lab", log):   # the apt state and the debs are the lab build's
        if dest.is_file():
            return dest
        apt = _apt(cache, log)
        _, version, _ = _headers(apt, release)
        packages = kbuild_packages(f"linux-image-{release}", version)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".hcall-") as tmp:
            x = Path(tmp)
            _dpkg_extract(*_fetch(apt, packages, cache / "debs", log).values(),
                          dest=x / "kbuild")
            build_hcall(x / "kbuild", release, x / "pnhcall", x / HCALL_MODULE, log)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(x / HCALL_MODULE, dest)
    return dest


def _headers(apt: PrivateApt, release: str) -> tuple[str, str, str]:
    """The ppc64el headers package of kernel `release`: its name, version and suite;
    `LabBuildError` if the machine's Debian archive has none."""
    headers = f"linux-headers-{release}"
    found = apt.versions([f"{headers}:ppc64el"])
    if not found:
        raise LabBuildError(f"no {headers} (ppc64el) in {' or '.join(SUITES)} of this "
                            "machine's Debian archive")
    return headers, found[0][1], found[0][2]


def build_host_initrd(release: str, cache: Path | None = None, log: Log = print) -> Path:
    """An initramfs archive that, appended to the lab's L1 one, puts a ppc64el Debian
    userland under /`BUILD_HOST_ROOT` with `BUILD_HOST` and kernel `release`'s headers:
    a root to chroot into that builds modules as a distribution's host does.  Cached by
    release; `LabBuildError` if the archive has no headers for it."""
    cache = cache or default_cache()
    dest = cache / "build-hosts" / f"{release}.cpio"
    with _locked(cache / "lab", log):   # the apt state and the debs are the lab build's
        if dest.is_file():
            return dest
        apt = _apt(cache, log)
        headers, _, suite = _headers(apt, release)
        packages = apt.resolve([headers, *BUILD_HOST], suite)
        debs = _fetch(apt, packages, cache / "debs", log)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".build-host-") as tmp:
            root = Path(tmp) / BUILD_HOST_ROOT
            _dpkg_extract(*debs.values(), dest=root)
            for unread in ("doc", "man", "info", "locale"):
                shutil.rmtree(root / "usr" / "share" / unread, ignore_errors=True)
            # what the packages' maintainer scripts would link on Debian
            for link, target in (("bin/sh", "dash"), ("usr/bin/awk", "gawk")):
                (root / link).unlink(missing_ok=True)
                (root / link).symlink_to(target)
            tree = Tree()
            for path in sorted(root.parent.rglob("*")):
                name = str(path.relative_to(root.parent))
                if path.is_symlink():
                    tree.symlink(name, os.readlink(path))
                elif path.is_dir():
                    tree.directory(name)
                else:
                    tree.file(name, path, path.stat().st_mode & 0o7777)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _write(tree, Path(tmp) / dest.name, log)
            shutil.move(Path(tmp) / dest.name, dest)
    return dest


def _standalone(apt: PrivateApt, name: str, suite: str) -> dict[str, str]:
    """{name: version} of a ppc64el package in `suite`, without its dependencies."""
    found = [v for n, v, s in apt.versions([f"{name}:ppc64el"]) if s == suite]
    if not found:
        raise LabBuildError(f"no ppc64el {name} in {suite}")
    return {name: found[0]}


def _choose_kernel(choice: KernelChoice, available: list[tuple[str, str, str]],
                   log: Log) -> tuple[str, str]:
    """(package, version) to use for `choice`, from (package, version, suite) triples."""
    found: dict[str, str] = {}
    for name, version, suite in available:
        if suite == choice.suite and re.fullmatch(choice.pattern, name):
            found.setdefault(name, version)
    if not found:
        raise LabBuildError(
            f"no ppc64el package matching `{choice.pattern}` in {choice.suite} "
            f"(wanted {choice.preferred}); the Debian archive does not carry it")
    if choice.preferred in found:
        name = choice.preferred
    else:
        name = max(found, key=lambda n: [int(d) for d in re.findall(r"\d+", n)])
        log(f"lab: {choice.preferred} is not in {choice.suite}; using the newest, {name}")
    log(f"lab: kernel {name} {found[name]} ({choice.suite})")
    return name, found[name]


def _fetch(apt: PrivateApt, packages: dict[str, str], debs: Path, log: Log) -> dict[str, Path]:
    """The .deb of each package (name -> version), downloading those not yet in `debs`."""
    debs.mkdir(parents=True, exist_ok=True)
    for stale in debs.glob(".partial-*"):  # left by a killed build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    specs = {name.split(":")[0]: f"{name}={version}" for name, version in packages.items()}
    files = apt.deb_files(specs.values())
    lacking = set(specs) - {f.package for f in files}
    if lacking:
        raise LabBuildError(f"apt offers no .deb for {', '.join(sorted(lacking))}")
    missing = [f for f in files if not _deb_ok(debs / f.filename, f)]
    size = sum(f.size for f in missing)
    log(f"lab: {len(files)} packages: {len(files) - len(missing)} cached in {debs}, "
        f"{len(missing)} to download ({_mb(size)})")
    if missing:
        t0 = time.monotonic()
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=debs))
        try:
            apt.download([specs[f.package] for f in missing], partial)
            for f in missing:
                if not _deb_ok(partial / f.filename, f):
                    raise LabBuildError(f"downloaded {f.filename} does not match the archive")
                os.replace(partial / f.filename, debs / f.filename)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        secs = max(time.monotonic() - t0, 1e-3)
        log(f"lab: downloaded {len(missing)} packages, {_mb(size)} in {secs:.1f} s "
            f"({size / secs / 1e6:.1f} MB/s)")
    return {f.package: debs / f.filename for f in files}


def _deb_ok(path: Path, deb: DebFile) -> bool:
    try:
        if path.stat().st_size != deb.size:
            return False
    except FileNotFoundError:
        return False
    return deb.sha256 is None or file_digest(path) == deb.sha256


def _unpack(debs: dict[str, Path], kernel_names: list[str], x: Path,
            log: Log) -> tuple[dict[str, Kernel], Path]:
    """Unpack each kernel into its own directory and the rest into one ppc64el root."""
    t0 = time.monotonic()
    log(f"lab: unpacking {len(debs)} packages ...")
    root = x / "root"
    userland = [deb for name, deb in debs.items() if name not in kernel_names]
    with ThreadPoolExecutor(max_workers=len(kernel_names) + 1) as pool:
        jobs = [pool.submit(_dpkg_extract, debs[name], dest=x / name) for name in kernel_names]
        jobs.append(pool.submit(_dpkg_extract, *userland, dest=root))
        for job in jobs:
            job.result()
    kernels = {name: read_kernel(name, x / name) for name in kernel_names}
    log(f"lab: unpacked {len(debs)} packages ({_secs(t0)})")
    return kernels, root


def _dpkg_extract(*debs: Path, dest: Path) -> None:
    """Unpack each of `debs`, in order, into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        done = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)],
                              capture_output=True, text=True, errors="replace")
        if done.returncode != 0:
            raise LabBuildError(f"`dpkg-deb -x {deb}` failed: {done.stderr.strip()[-1000:]}")


def _skeleton(root: Path, init: Path) -> Tree:
    """busybox-static, the directories init mounts on, the console nodes and `init`."""
    tree = Tree()
    for name in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "etc"):
        tree.directory(name)
    tree.directory("root", 0o700)
    tree.directory("tmp", 0o1777)
    tree.file("bin/busybox", _existing(root, "bin/busybox"), 0o755)
    tree.symlink("bin/sh", "busybox")
    tree.char_device("dev/console", 0o600, 5, 1)
    tree.char_device("dev/null", 0o666, 1, 3)
    tree.file("init", init, 0o755)
    return tree


def _l2_tree(root: Path) -> Tree:
    return _skeleton(root, FILES / "l2-init")


def _l1_tree(root: Path, kernels: dict[str, Kernel], out: Path) -> Tree:
    """The L1 root: an L0 for L2 (QEMU, KVM modules, L2 images) that can kexec,
    with the NIC modules and SSH server the emulated hosts (twins) use."""
    tree = _skeleton(root, FILES / "l1-init")
    for series, kernel in kernels.items():
        for name, data in kernel.modules.items():
            tree.file(f"lib/modules/{kernel.release}/{name}.ko", data)
        tree.file(f"boot/vmlinux-{series}", out / f"vmlinux-{series}", 0o644)
    for series, kernel in kernels.items():
        tree.file(f"lib/modules/{kernel.release}/{HCALL_MODULE}",
                  out / hcall_module_file(series, kernel.release))
    tree.file(f"boot/{L2_INITRD}", out / L2_INITRD, 0o644)
    tree.file("etc/powernest/kernels",
              "".join(f"{s} {k.release}\n" for s, k in kernels.items()).encode())
    tree.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    tree.file("etc/group", b"root:x:0:\n")
    tree.file("etc/shells", b"/bin/sh\n")
    programs = {
        "usr/bin/qemu-system-ppc64": _existing(root, "usr/bin/qemu-system-ppc64"),
        "sbin/kexec": _existing(root, "sbin/kexec", "usr/sbin/kexec"),
        "usr/sbin/dropbear": _existing(root, "usr/sbin/dropbear"),
        "usr/bin/dropbearkey": _existing(root, "usr/bin/dropbearkey"),
        **{path: _existing(root, source) for path, (_, source) in STANDALONE.items()},
    }
    for path, program in programs.items():
        tree.file(path, program, 0o755)
    for soname, library in library_closure(root, programs.values()).items():
        tree.file(f"{LIBDIR}/{soname}", library)
    for program in programs.values():
        interp = dynamic_info(program)[1]
        if interp and PurePosixPath(interp).parent != PurePosixPath("/", LIBDIR):
            name = PurePosixPath(interp).name
            tree.symlink(interp, os.path.relpath(f"/{LIBDIR}/{name}", PurePosixPath(interp).parent))
    for firmware in ("vof.bin", "slof.bin"):
        tree.file(f"usr/share/qemu/{firmware}", _existing(root, f"usr/share/qemu/{firmware}"),
                  0o644)
    tree.file("usr/bin/mkself", FILES / "mkself", 0o755)
    return tree


def _existing(root: Path, *paths: str) -> Path:
    """The first of `paths` that is a file in the unpacked root (symlinks followed inside)."""
    for path in paths:
        found = resolve_in(root, path)
        if found.is_file():
            return found
    raise LabBuildError(f"none of {', '.join('/' + p for p in paths)} is in the unpacked "
                        f"packages under {root}")


def _write(tree: Tree, dest: Path, log: Log) -> None:
    t0 = time.monotonic()
    with dest.open("wb") as out:
        tree.write(out)
    log(f"lab: wrote {dest.name}: {_mb(dest.stat().st_size)} ({len(tree.entries)} entries, "
        f"{_secs(t0)})")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _secs(t0: float) -> str:
    return f"{time.monotonic() - t0:.1f} s"
