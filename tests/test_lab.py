"""The lab builder's parts, without the network: cpio, apt configuration, ELF, cache."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from powernest.lab import LabBuildError, build_lab, find_lab
from powernest.lab import builder as builder_module
from powernest.lab.apt import PrivateApt, debian_archive, parse_deb822, parse_one_line
from powernest.lab.builder import KernelChoice, _choose_kernel
from powernest.lab.cache import RECIPE_DIR, recipe_key
from powernest.lab.cpio import Tree
from powernest.lab.elf import dynamic_info, resolve_in


def read_newc(data: bytes) -> list[dict[str, Any]]:
    """A minimal newc reader: one dict per member, the trailer left out."""
    members: list[dict[str, Any]] = []
    offset = 0
    names = ("ino", "mode", "uid", "gid", "nlink", "mtime", "size",
             "maj", "min", "rmaj", "rmin", "namesize", "check")
    while True:
        assert offset % 4 == 0
        assert data[offset:offset + 6] == b"070701"
        fields = dict(zip(names, (int(data[offset + 6 + 8 * i:offset + 14 + 8 * i], 16)
                                  for i in range(13)), strict=True))
        start = offset + 110
        name = data[start:start + fields["namesize"] - 1].decode()
        assert data[start + fields["namesize"] - 1] == 0
        offset = start + fields["namesize"]
        offset += -offset % 4
        body = data[offset:offset + fields["size"]]
        offset += fields["size"]
        offset += -offset % 4
        if name == "TRAILER!!!":
            assert offset == len(data)
            return members
        members.append({**fields, "name": name, "body": body})


# -- cpio ---------------------------------------------------------------------------------------

def test_cpio_writer_round_trip(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_bytes(b"#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    tree = Tree()
    tree.directory("tmp", 0o1777)
    tree.file("/init", b"#!/bin/busybox sh\n", 0o755)
    tree.file("usr/bin/tool", script)
    tree.file("etc/odd", b"12345")  # a size that needs padding
    tree.symlink("bin/sh", "busybox")
    tree.char_device("dev/console", 0o600, 5, 1)
    tree.char_device("dev/null", 0o666, 1, 3)
    out = io.BytesIO()
    size = tree.write(out)
    assert size == len(out.getvalue())

    members = {m["name"]: m for m in read_newc(out.getvalue())}
    order = list(members)
    assert order == sorted(order)
    assert {"usr", "usr/bin", "etc", "bin", "dev"} <= set(members)  # parents added
    assert order.index("usr") < order.index("usr/bin") < order.index("usr/bin/tool")
    assert all(m["uid"] == 0 and m["gid"] == 0 and m["mtime"] == 0 for m in members.values())
    assert len({m["ino"] for m in members.values()}) == len(members)

    console, null = members["dev/console"], members["dev/null"]
    assert stat.S_ISCHR(console["mode"]) and stat.S_IMODE(console["mode"]) == 0o600
    assert (console["rmaj"], console["rmin"]) == (5, 1)
    assert stat.S_ISCHR(null["mode"]) and stat.S_IMODE(null["mode"]) == 0o666
    assert (null["rmaj"], null["rmin"]) == (1, 3)
    assert members["init"]["body"] == b"#!/bin/busybox sh\n"
    assert members["init"]["mode"] == stat.S_IFREG | 0o755
    assert members["usr/bin/tool"]["body"] == script.read_bytes()
    assert members["usr/bin/tool"]["mode"] == stat.S_IFREG | 0o750  # kept from the host file
    assert members["etc/odd"]["body"] == b"12345"
    assert members["etc/odd"]["mode"] == stat.S_IFREG | 0o644
    assert stat.S_ISLNK(members["bin/sh"]["mode"]) and members["bin/sh"]["body"] == b"busybox"
    assert members["tmp"]["mode"] == stat.S_IFDIR | 0o1777
    assert members["usr"]["mode"] == stat.S_IFDIR | 0o755


def test_cpio_is_reproducible() -> None:
    tree = Tree()
    tree.file("init", b"x" * 1000)
    tree.char_device("dev/null", 0o666, 1, 3)
    first, second = io.BytesIO(), io.BytesIO()
    written = tree.write(first)
    tree.write(second)
    data = first.getvalue()
    assert data == second.getvalue() and len(data) == written
    assert [m["name"] for m in read_newc(data)] == ["dev", "dev/null", "init"]


# -- the archive address ------------------------------------------------------------------------

DEB822 = """\
Types: deb
# a comment inside the stanza
URIs: http://archive.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://source.example/debian
Suites: bookworm

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://archive.example/debian http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

INLINE_KEY = """\
Types: deb
URIs: http://inline.example/debian
Suites: trixie
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL
 -----END PGP PUBLIC KEY BLOCK-----
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb-src http://source.example/debian bookworm main
deb https://vendor.example/apt cloud-sdk-bookworm main
deb [arch=amd64 signed-by=/etc/keys/a.gpg] http://oneline.example/debian bookworm-backports main
"""


def test_parse_deb822() -> None:
    sources = parse_deb822(DEB822, Path("x.sources"))
    assert [s.uris for s in sources] == [
        ("http://archive.example/debian-security",),
        ("http://archive.example/debian", "http://second.example/debian")]
    assert sources[1].suites == ("bookworm", "bookworm-updates")
    assert sources[1].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    (inline,) = parse_deb822(INLINE_KEY, Path("y.sources"))
    assert inline.uris == ("http://inline.example/debian",) and inline.signed_by is None


def test_parse_one_line() -> None:
    sources = parse_one_line(ONE_LINE, Path("x.list"))
    assert [(s.uris, s.suites) for s in sources] == [
        (("https://vendor.example/apt",), ("cloud-sdk-bookworm",)),
        (("http://oneline.example/debian",), ("bookworm-backports",))]
    assert sources[1].signed_by == "/etc/keys/a.gpg"


def write_etc(tmp_path: Path, files: dict[str, str]) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


def test_debian_archive_from_deb822(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, {"sources.list.d/debian.sources": DEB822,
                               "sources.list.d/vendor.list": ONE_LINE})
    archive = debian_archive(etc)
    assert archive.uris == ("http://archive.example/debian",)
    assert archive.origin == etc / "sources.list.d/debian.sources"


def test_debian_archive_from_one_line(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, {
        "sources.list.d/a-security.sources": DEB822.split("\n\n")[0] + "\n",
        "sources.list.d/b.list.disabled": "deb http://ignored.example/debian bookworm main\n",
        "sources.list.d/c.list": ONE_LINE})
    assert debian_archive(etc).uris == ("http://oneline.example/debian",)
    etc2 = write_etc(tmp_path / "2", {"sources.list": ONE_LINE, "sources.list.d/z.sources": DEB822})
    assert debian_archive(etc2).uris == ("http://oneline.example/debian",)  # sources.list first


def test_no_debian_archive_is_a_clear_error(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, {"sources.list.d/vendor.list":
                               "deb https://vendor.example/apt cloud-sdk-bookworm main\n"})
    with pytest.raises(LabBuildError, match="no Debian archive"):
        debian_archive(etc)
    with pytest.raises(LabBuildError, match="no Debian archive"):
        debian_archive(tmp_path / "missing")


# -- private apt: parsing apt's answers ---------------------------------------------------------

def fake_apt(tmp_path: Path, answers: dict[str, str], stderr: str = "") -> PrivateApt:
    """A PrivateApt whose apt answers `answers[first argument after -q]` on stdout."""
    archive = parse_one_line("deb http://archive.example/debian bookworm main\n", Path("x"))[0]
    apt = PrivateApt(tmp_path / "state", archive, ("bookworm", "bookworm-backports"))

    def call(tool: str, args: Sequence[str],
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        stdout = answers.get(args[0] if args[0] != "-q" else args[1], "")
        return subprocess.CompletedProcess([tool, *args], 0, stdout, stderr)

    apt.call = call  # type: ignore[method-assign]
    return apt


def test_private_apt_configuration(tmp_path: Path) -> None:
    apt = fake_apt(tmp_path, {})
    sources = (tmp_path / "state/sources.list").read_text()
    assert sources == ("deb [arch=amd64,ppc64el] http://archive.example/debian bookworm main\n"
                       "deb [arch=amd64,ppc64el] http://archive.example/debian "
                       "bookworm-backports main\n")
    options = apt.options()
    assert f"-oDir::State::status={tmp_path}/state/status" in options
    assert "-oDir::Etc::sourceparts=/dev/null" in options
    assert "-oAPT::Architecture=ppc64el" in options
    assert options[-2:] == ["-oAPT::Architectures::=amd64", "-oAPT::Architectures::=ppc64el"]
    assert (tmp_path / "state/status").read_text() == ""


def test_private_apt_parses_answers(tmp_path: Path) -> None:
    apt = fake_apt(tmp_path, {
        "-s": "Reading package lists...\n"
              "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [ppc64el])\n"
              "Inst libgcc-s1 (12.2.0-14+deb12u1 Debian:12.15/oldstable [ppc64el]) []\n"
              "Inst qemu-system-data (1:10.0.2+ds-2 Debian Backports:oldstable-backports [all])\n"
              "Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [ppc64el])\n",
        "download": "'http://a.example/pool/b/busybox-static_1%3a1.35_ppc64el.deb' "
                    "busybox-static_1%3a1.35_ppc64el.deb 965108 SHA256:932d\n"
                    "'http://a.example/pool/l/x.deb' linux-image-x_6.1_ppc64el.deb 10 MD5Sum:ab\n",
        "madison": " linux-image-6.1.0-50-powerpc64le |  6.1.176-1 | http://a.example/debian "
                   "bookworm/main ppc64el Packages\n"
                   " linux-image-6.1.0-50-powerpc64le |  6.1.176-1 | http://a.example/debian "
                   "bookworm/main amd64 Packages\n",
    })
    assert apt.resolve(["qemu-system-ppc"], "bookworm-backports") == {
        "libc6": "2.36-9+deb12u14", "libgcc-s1": "12.2.0-14+deb12u1",
        "qemu-system-data": "1:10.0.2+ds-2"}
    first, second = apt.deb_files(["busybox-static=1:1.35"])
    assert (first.package, first.filename, first.size, first.sha256) == (
        "busybox-static", "busybox-static_1%3a1.35_ppc64el.deb", 965108, "932d")
    assert second.package == "linux-image-x" and second.sha256 is None
    assert apt.versions(["linux-image-6.1.0-50-powerpc64le"]) == [
        ("linux-image-6.1.0-50-powerpc64le", "6.1.176-1", "bookworm")]


def test_kernel_choice() -> None:
    choice = KernelChoice("bookworm", r"linux-image-6\.1\.0-\d+-powerpc64le",
                          "linux-image-6.1.0-50-powerpc64le")
    available = [("linux-image-6.1.0-9-powerpc64le", "6.1.1-1", "bookworm"),
                 ("linux-image-6.1.0-47-powerpc64le", "6.1.170-3", "bookworm"),
                 ("linux-image-6.1.0-47-powerpc64le-dbg", "6.1.170-3", "bookworm"),
                 ("linux-image-6.1.0-99-powerpc64le", "6.1.999-1", "bookworm-backports")]
    lines: list[str] = []
    assert _choose_kernel(choice, available, lines.append) == (
        "linux-image-6.1.0-47-powerpc64le", "6.1.170-3")
    assert "not in bookworm; using the newest, linux-image-6.1.0-47-powerpc64le" in lines[0]
    available.append(("linux-image-6.1.0-50-powerpc64le", "6.1.176-1", "bookworm"))
    assert _choose_kernel(choice, available, print)[0] == choice.preferred
    with pytest.raises(LabBuildError, match="no ppc64el package"):
        _choose_kernel(choice, [], print)


def test_apt_update_without_lists_is_a_clear_error(tmp_path: Path) -> None:
    failed = "W: Failed to fetch http://archive.example/debian/dists/bookworm/InRelease\n"
    apt = fake_apt(tmp_path, {}, stderr=failed)
    with pytest.raises(LabBuildError, match="no package lists.*Failed to fetch"):
        apt.update()
    (tmp_path / "state/lists/a_bookworm_main_binary-ppc64el_Packages.lz4").write_text("")
    assert apt.update() == [failed.strip()]  # older lists are there: a warning only


# -- ELF ----------------------------------------------------------------------------------------

def test_dynamic_info_matches_readelf() -> None:
    program = Path(sys.executable).resolve()
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) not installed")
    out = subprocess.run(["readelf", "-dlW", str(program)], capture_output=True, text=True).stdout
    needed, interp = dynamic_info(program)
    assert needed == [line.split("[")[1].rstrip("]") for line in out.splitlines()
                      if "(NEEDED)" in line]
    if "Requesting program interpreter" in out:
        assert interp is not None and interp in out


def test_resolve_in_stays_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/lib/ppc").mkdir(parents=True)
    (root / "usr/lib/ppc/libz.so.1.2").write_text("z")
    (root / "usr/lib/ppc/libz.so.1").symlink_to("libz.so.1.2")
    (root / "lib").symlink_to("/usr/lib")  # absolute: must resolve inside root
    (root / "loop").symlink_to("loop")
    assert resolve_in(root, "/lib/ppc/libz.so.1") == root / "usr/lib/ppc/libz.so.1.2"
    assert resolve_in(root, "usr/../lib/ppc/libz.so.1") == root / "usr/lib/ppc/libz.so.1.2"
    assert resolve_in(root, "lib/../x") == root / "usr/x"  # `..` after a link, as the kernel does
    with pytest.raises(LabBuildError, match="too many symbolic links"):
        resolve_in(root, "loop")


# -- the cache ----------------------------------------------------------------------------------

def copy_recipe(dest: Path) -> Path:
    return Path(shutil.copytree(RECIPE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__")))


def test_key_depends_on_the_recipe_content(tmp_path: Path) -> None:
    recipe = copy_recipe(tmp_path / "lab")
    assert recipe_key(recipe) == recipe_key()  # the content counts, not the place
    init = recipe / "files" / "l2-init"
    init.write_text(init.read_text() + "# changed\n")
    changed = recipe_key(recipe)
    assert changed != recipe_key()
    (recipe / "files" / "mkself").write_text("#!/bin/sh\n")
    assert recipe_key(recipe) not in (changed, recipe_key())


def fake_lab(cache: Path) -> Path:
    """A lab dir with a valid manifest for the current recipe, made of small fake files."""
    key = recipe_key()
    root = cache / "lab" / key
    root.mkdir(parents=True)
    files = {}
    for name in ("l1.cpio", "l2.cpio", "vmlinux-6.12", "vmlinux-6.1"):
        data = f"fake {name}".encode()
        (root / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (root / "manifest.json").write_text(json.dumps({
        "key": key, "files": files,
        "kernel_releases": {"6.12": "6.12.95+deb12-powerpc64le", "6.1": "6.1.0-50-powerpc64le"},
        "packages": {"busybox-static": "1:1.35.0-4+deb12u1+b1"}}))
    return root


class Built(Exception):
    """Raised by the stand-in for the real build."""


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise Built

    monkeypatch.setattr(builder_module, "_build", refuse)
    monkeypatch.setattr(builder_module, "debian_archive", refuse)


@pytest.mark.usefixtures("no_build")
def test_verified_cache_is_reused_without_building(tmp_path: Path) -> None:
    root = fake_lab(tmp_path)
    lines: list[str] = []
    images = build_lab(tmp_path, log=lines.append)
    assert lines == [f"lab images up to date: {images.key[:12]} in {root}"]
    assert images.root == root and images.key == recipe_key()
    assert images.l1_initrd == root / "l1.cpio" and images.l2_initrd == root / "l2.cpio"
    assert images.kernels == {"6.12": root / "vmlinux-6.12", "6.1": root / "vmlinux-6.1"}
    assert images.kernel_releases["6.1"] == "6.1.0-50-powerpc64le"
    assert images.packages == {"busybox-static": "1:1.35.0-4+deb12u1+b1"}
    assert find_lab(tmp_path) == images


@pytest.mark.usefixtures("no_build")
def test_damaged_or_forced_cache_is_rebuilt(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_lab(tmp_path)
    with pytest.raises(Built):
        build_lab(tmp_path, force=True, log=lambda line: None)
    assert find_lab(tmp_path) is not None
    assert not list((tmp_path / "lab").glob(".build-*"))  # the failed build left nothing
    (root / "vmlinux-6.1").write_bytes(b"fake vmlinux-6.X")  # same size, other content
    assert find_lab(tmp_path) is None
    with pytest.raises(Built):
        build_lab(tmp_path, log=lambda line: None)
    monkeypatch.setenv("POWERNEST_CACHE", str(tmp_path))
    assert find_lab() is None
    (root / "vmlinux-6.1").write_bytes(b"fake vmlinux-6.1")
    assert find_lab() is not None
