"""pnhcall.ko for real: built by the lab, loaded into a real L1 under QEMU TCG,
making hcalls against QEMU's nested-papr and nested-hv L0 (one L1 for each)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from powernest.errors import Unavailable
from powernest.guests import L1Guest
from powernest.hcalls import cases, driver
from powernest.hcalls.driver import HcallError
from powernest.hcalls.runner import HcallRunner
from powernest.hcalls.script import compile_case
from powernest.hcalls.verdict import Outcome, parse_output, verdict
from powernest.inventory import Host
from powernest.kinds import Target
from powernest.lab import (
    LabBuildError,
    LabImages,
    build_host_initrd,
    build_lab,
    hcall_module_for,
)
from powernest.lab.module import modinfo
from powernest.local import LocalShell
from powernest.nested import API
from powernest.qemu import GuestSpec
from powernest.shell import Result

H_GUEST_GET_CAPABILITIES, H_GUEST_SET_CAPABILITIES = 0x460, 0x464
H_GUEST_CREATE, H_GUEST_DELETE = 0x470, 0x488
H_LOGICAL_CI_LOAD = 0x3C   # QEMU answers it in TCG: a load from a real address
H_SUCCESS, H_FUNCTION, H_PARAMETER, H_STATE = 0, -2, -4, -75
CAP_P10_MODE = 1 << 61     # H_GUEST_CAPABILITIES_P10_MODE (PAPR bit 2)
PAGE = 4096                # the 6.12 L1 kernel's page size
RESULT_LINE = re.compile(r"rc=-?\d+(?: r(?:[4-9]|1[0-2])=0x(?:0|[1-9a-f][0-9a-f]*)){9}"
                         r" tb0=0x[0-9a-f]+ tb1=0x[0-9a-f]+ l1=ok")


def boot(lab: LabImages, tmp_path: Path, cap: str) -> Iterator[L1Guest]:
    """A power10 L1 offered `cap` by its L0, with pnhcall.ko installed."""
    assert lab.hcall_module is not None
    spec = GuestSpec(name=f"pn.hcall.{cap.split('=')[0]}", kernel=str(lab.kernels["6.12"]),
                     initrd=str(lab.l1_initrd), machine_props=(cap,), cpu="power10",
                     pidfile=str(tmp_path / "l1.pid"))
    guest = L1Guest(LocalShell(), spec, tmp_path / "l1.log", 180, 60)
    try:
        guest.start()
        driver.install(guest, lab.hcall_module, allow=(H_LOGICAL_CI_LOAD,))
        yield guest
    finally:
        guest.stop()


@pytest.fixture(scope="module")
def papr_l1(lab: LabImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L1Guest]:
    yield from boot(lab, tmp_path_factory.mktemp("papr"), "cap-nested-papr=on")


@pytest.fixture(scope="module")
def hv_l1(lab: LabImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L1Guest]:
    yield from boot(lab, tmp_path_factory.mktemp("hv"), "cap-nested-hv=on")


def test_the_lab_builds_the_module_for_the_l1_kernel(lab: LabImages) -> None:
    assert lab.hcall_module == lab.root / "pnhcall.ko"
    info = modinfo(lab.hcall_module.read_bytes())
    assert info["name"] == "pnhcall" and info["license"] == "GPL"
    assert driver.vermagic(lab.hcall_module).startswith(f"{lab.kernel_releases['6.12']} SMP ")
    assert b".debug_info" not in lab.hcall_module.read_bytes()  # stripped


def test_a_second_build_does_nothing(lab: LabImages) -> None:
    lines: list[str] = []
    assert build_lab(lab.root.parent.parent, log=lines.append) == lab
    assert lines == [f"lab images up to date: {lab.key[:12]} in {lab.root}"]


def test_vermagic_is_the_l1_kernels_own(papr_l1: L1Guest, lab: LabImages) -> None:
    assert lab.hcall_module is not None
    script = 'strings "/lib/modules/$(uname -r)/kvm-hv.ko" | grep "^vermagic="'
    said = papr_l1.run(["sh", "-c", script], check=True).stdout
    kvm_hv = re.findall(r"^vermagic=(.*)$", said, re.M)
    assert [v.strip() for v in kvm_hv] == [driver.vermagic(lab.hcall_module)]


def test_loaded_once_with_its_proc_file(papr_l1: L1Guest, lab: LabImages) -> None:
    assert lab.hcall_module is not None
    driver.install(papr_l1, lab.hcall_module)  # loaded already: nothing to do
    modules = papr_l1.run(["cat", "/proc/modules"], check=True).stdout
    assert len(re.findall(r"^pnhcall ", modules, re.M)) == 1
    assert papr_l1.run(["stat", "-c", "%a", "/proc/pnhcall"], check=True).stdout.split() == ["600"]


def test_get_capabilities_under_nested_papr(papr_l1: L1Guest) -> None:
    line = driver.command(papr_l1, f"call {H_GUEST_GET_CAPABILITIES:#x} 0")
    assert RESULT_LINE.fullmatch(line), line
    result = driver.call(papr_l1, H_GUEST_GET_CAPABILITIES, 0)
    assert result.rc == H_SUCCESS and result.r4 != 0
    assert result.r4 & CAP_P10_MODE, f"{result.r4:#x}"
    assert driver.call(papr_l1, H_GUEST_GET_CAPABILITIES, 1).rc == H_PARAMETER  # no flags known


def test_get_capabilities_under_nested_hv(hv_l1: L1Guest) -> None:
    assert driver.call(hv_l1, H_GUEST_GET_CAPABILITIES, 0).rc == H_FUNCTION


def test_buffer_round_trip(papr_l1: L1Guest) -> None:
    addr = driver.alloc(papr_l1, 3, 2 * PAGE)
    assert addr != 0 and addr % PAGE == 0
    assert driver.read(papr_l1, 3, 0, 2 * PAGE) == bytes(2 * PAGE)  # zeroed
    data = os.urandom(1000)
    driver.write(papr_l1, 3, PAGE - 500, data)  # across the page boundary
    assert driver.read(papr_l1, 3, PAGE - 500, 1000) == data
    # The hypervisor finds the bytes at the real address the module gave.
    loaded = driver.call(papr_l1, H_LOGICAL_CI_LOAD, 8, addr + PAGE - 500)
    assert loaded.rc == H_SUCCESS and loaded.r4 == int.from_bytes(data[:8], "big")
    with pytest.raises(HcallError, match="out of bounds"):
        driver.write(papr_l1, 3, 2 * PAGE - 1, b"\0\0")
    assert driver.alloc(papr_l1, 3, PAGE) % PAGE == 0  # a second alloc replaces the first
    assert driver.read(papr_l1, 3, 0, PAGE) == bytes(PAGE)
    driver.free(papr_l1, 3)
    with pytest.raises(HcallError, match="not allocated"):
        driver.read(papr_l1, 3, 0, 1)


def test_a_call_reports_the_timebase_around_it(papr_l1: L1Guest) -> None:
    fields = dict(t.split("=") for t in driver.command(papr_l1, "call 0x460 0").split())
    assert 0 < int(fields["tb0"], 16) <= int(fields["tb1"], 16)
    driver.alloc(papr_l1, 4, PAGE)
    stamped = int(driver.command(papr_l1, "stamp 4 8 0x1000 le").removeprefix("tb="), 16)
    assert stamped > int(fields["tb1"], 16) + 0x1000
    assert driver.read(papr_l1, 4, 8, 8) == stamped.to_bytes(8, "little")
    driver.command(papr_l1, "stamp 4 0 0 be")   # later, without the 0x1000 ahead
    assert int.from_bytes(driver.read(papr_l1, 4, 0, 8), "big") > stamped - 0x1000
    with pytest.raises(HcallError, match="usage: stamp"):
        driver.command(papr_l1, "stamp 4 0 0 middle")
    driver.free(papr_l1, 4)


@pytest.mark.parametrize("row_id", ["v1-l2-exit-hcall", "v1-l2-exit-load-unmapped",
                                    "v2-l2-exit-hcall", "v2-l2-exit-store-read-only"])
def test_an_l2_micro_program_runs(row_id: str, hv_l1: L1Guest, papr_l1: L1Guest) -> None:
    """End to end: a micro-program row's script, run by the module in an L1 of its API,
    enters a real L2 and gets back everything the row requires."""
    row = cases.case(row_id)
    l1 = hv_l1 if row.api is API.V1 else papr_l1
    driver.upload(l1, compile_case(row).encode(), "/tmp/row.sh")
    output = l1.run(["sh", "/tmp/row.sh"], timeout=60).stdout
    result = verdict(row, parse_output(output))
    assert result.outcome is Outcome.MATCHES, f"{result}\n{output[-2000:]}"


def test_a_bad_command_fails_the_write(papr_l1: L1Guest) -> None:
    script = 'printf "call 0x46x\\n" > /proc/pnhcall; echo "write=$?"; cat /proc/pnhcall'
    said = papr_l1.run(["sh", "-c", script]).stdout
    assert "write=1" in said and "error: bad number 0x46x" in said
    # Decimal negatives are two's complement; QEMU leaves R4 (A1) as it was.
    assert driver.command(papr_l1, "call 0x460 -2").startswith("rc=-4 r4=0xfffffffffffffffe ")


def test_only_the_nested_hcalls_and_those_allowed_at_load(papr_l1: L1Guest) -> None:
    with pytest.raises(HcallError, match="hcall not allowed .* 0x4$"):
        driver.command(papr_l1, "call 0x4 0 0 0")        # H_REMOVE: not a nested hcall
    with pytest.raises(HcallError, match="hcall not allowed"):
        driver.command(papr_l1, "call -1")
    assert driver.call(papr_l1, H_LOGICAL_CI_LOAD, 8, 0).rc == H_SUCCESS   # allow=0x3c


def test_buffers_the_l0_may_hold_are_kept_until_it_holds_none(papr_l1: L1Guest) -> None:
    """A row whose setup fails leaves its guest: its buffers are kept, not freed, until
    the guest is deleted."""
    assert driver.command(papr_l1, "kept") == "kept=0 bytes=0 lent=no"
    caps = driver.call(papr_l1, H_GUEST_GET_CAPABILITIES, 0).r4
    assert driver.call(papr_l1, H_GUEST_SET_CAPABILITIES, 0, caps).rc in (H_SUCCESS, H_STATE)
    guest = driver.call(papr_l1, H_GUEST_CREATE, 0, -1)
    assert guest.rc == H_SUCCESS
    driver.alloc(papr_l1, 6, 2 * PAGE)
    assert driver.command(papr_l1, "free 6") == "kept (the L0 may hold it)"
    driver.alloc(papr_l1, 6, PAGE)
    driver.alloc(papr_l1, 6, PAGE)            # replaced: the first one is kept too
    assert driver.command(papr_l1, "kept") == f"kept=2 bytes={3 * PAGE} lent=yes"
    assert driver.call(papr_l1, H_GUEST_DELETE, 0, guest.r4).rc == H_SUCCESS
    assert driver.command(papr_l1, "kept") == "kept=0 bytes=0 lent=no"   # released
    assert driver.command(papr_l1, "free 6") == "ok"


def test_the_runner_unloads_the_module_from_its_shared_l1s(hv_l1: L1Guest,
                                                           lab: LabImages,
                                                           tmp_path: Path) -> None:
    """An L1 the run does not own (an LPAR) keeps running: no module is left in it."""
    stopped: list[object] = []

    class OneL1:
        def l1(self, target: Target) -> L1Guest:
            return hv_l1

        def stop(self, l1: object) -> None:
            stopped.append(l1)

        def owns(self, l1: object) -> bool:
            return False

    host = Host.model_validate({"name": "lpar-like", "kind": "tcg", "cpu": "power10"})
    runner = HcallRunner(OneL1(), lab.hcall_modules, tmp_path)   # type: ignore[arg-type]
    run = runner.run(Target(host, API.V1), cases.case("v1-set-partition-table"))
    assert run.verdict.outcome is Outcome.MATCHES, run.verdict
    assert driver.loaded(hv_l1)
    runner.close()
    assert stopped == [hv_l1] and not driver.loaded(hv_l1)
    driver.install(hv_l1, lab.hcall_module, allow=(H_LOGICAL_CI_LOAD,))   # for what follows


def test_an_l1_kernel_without_a_module_is_a_skip_that_says_what_to_do(
        lab: LabImages, tmp_path: Path) -> None:
    class ForeignL1(LocalShell):
        """A host with no compiler or headers for the kernel it names (this machine)."""

        kernel_release = "6.16.3+deb13-powerpc64le"

    host = Host.model_validate({"name": "lpar", "kind": "tcg", "cpu": "power10"})
    runner = HcallRunner(None, lab.hcall_modules, tmp_path)   # type: ignore[arg-type]
    with pytest.raises(Unavailable) as skipped:
        runner.module_for(ForeignL1("pn.lpar"), Target(host, API.V2))   # type: ignore[arg-type]
    assert str(skipped.value) == (
        "no pnhcall.ko for 6.16.3+deb13-powerpc64le, the kernel pn.lpar runs: pn.lpar cannot "
        "build it (no /lib/modules/6.16.3+deb13-powerpc64le/build/Makefile (the kernel's "
        f"headers)); here: the lab builds it for its own kernels "
        f"({', '.join(lab.hcall_modules)}). Install that kernel's headers and a compiler on "
        "the host (the suite then builds it there), or build it against them (make -C "
        "/lib/modules/$(uname -r)/build M=lib/powernest/hcalls/module modules) and give its "
        "path as the host's 'hcall_module' in the inventory")
    given = host.model_copy(update={"hcall_module": str(lab.hcall_module)})
    with pytest.raises(Unavailable, match="is built for 6.12"):
        runner.module_for(ForeignL1("pn.lpar"), Target(given, API.V2))   # type: ignore[arg-type]


class BuildHost:
    """An L1 whose commands run in the Debian userland under `ROOT` (make, gcc, its
    kernel's headers): a host that builds modules, as a distribution's LPAR does."""

    ROOT = "/buildhost"

    def __init__(self, l1: L1Guest) -> None:
        self.l1, self.name, self.log_path = l1, l1.name, l1.log_path
        self.kernel_release = l1.kernel_release
        for fs in ("proc", "sys", "dev", "tmp"):
            l1.run(["mkdir", "-p", f"{self.ROOT}/{fs}"], check=True)
            l1.run(["mount", "--bind", f"/{fs}", f"{self.ROOT}/{fs}"], check=True)

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        return self.l1.run(["chroot", self.ROOT, *argv], timeout, check)

    def alive(self) -> bool:
        return self.l1.alive()


def test_a_host_with_a_compiler_and_headers_builds_the_module_itself(
        lab: LabImages, tmp_path: Path) -> None:
    """The runner meets a kernel the lab has no module for, on a host that can build
    one: built there (once), loaded there, a row run with it."""
    release = lab.kernel_releases["6.1"]
    initrd = tmp_path / "l1-build-host.cpio"
    with initrd.open("wb") as out:
        for part in (lab.l1_initrd, build_host_initrd(release)):
            with part.open("rb") as archive:
                shutil.copyfileobj(archive, out)
    spec = GuestSpec(name="pn.buildhost", kernel=str(lab.kernels["6.1"]), initrd=str(initrd),
                     machine_props=("cap-nested-papr=on",), cpu="power10",
                     pidfile=str(tmp_path / "l1.pid"))
    guest = L1Guest(LocalShell(), spec, tmp_path / "l1.log", 300, 60)
    try:
        guest.start()
        host = BuildHost(guest)

        class ThisHost:
            def l1(self, target: Target) -> BuildHost:
                return host

            def stop(self, l1: object) -> None:
                """The test stops it."""

            def owns(self, l1: object) -> bool:
                return False   # an LPAR-like host: the runner unloads its module

        t0 = time.monotonic()
        built = driver.build_on_host(host, release)
        cold = time.monotonic() - t0
        said = host.run(["sh", "-c", 'tr "\\0" "\\n" <"$1" | grep ^vermagic=', "sh",
                         built.path]).stdout
        assert said.startswith(f"vermagic={release} SMP "), said
        lpar = Host.model_validate({"name": "lpar", "kind": "tcg", "cpu": "power10"})
        runner = HcallRunner(ThisHost(), {}, tmp_path)   # type: ignore[arg-type]
        t0 = time.monotonic()
        assert runner.module_for(host, Target(lpar, API.V2)) == built   # kept on the host
        warm = time.monotonic() - t0
        run = runner.run(Target(lpar, API.V2), cases.case("v2-get-capabilities"))
        assert run.verdict.outcome is Outcome.MATCHES, run.verdict
        runner.close()
        print(f"built on the host in {cold:.1f} s; found built in {warm:.1f} s")
    finally:
        guest.stop()


def test_a_host_that_cannot_build_says_what_it_lacks() -> None:
    with pytest.raises(driver.CannotBuild,
                       match=r"^no /lib/modules/9\.9\.9-powerpc64le/build/Makefile "):
        driver.build_on_host(LocalShell(), "9.9.9-powerpc64le")


def test_the_lab_builds_the_module_for_each_of_its_kernels(lab: LabImages) -> None:
    assert set(lab.hcall_modules) == set(lab.kernel_releases.values())
    for release, path in lab.hcall_modules.items():
        assert driver.vermagic(path).split(" ")[0] == release


def test_a_module_for_a_kernel_the_lab_has_not_is_cross_built_from_its_headers(
        tmp_path: Path) -> None:
    """As for an LPAR running its owner's kernel: fetched, built, checked, then cached."""
    release = "6.1.0-50-powerpc64le"   # a kernel Debian's archive has headers for
    lines: list[str] = []
    built = hcall_module_for(release, cache=tmp_path, log=lines.append)
    assert driver.vermagic(built).startswith(f"{release} SMP ")
    assert any("cross-building pnhcall.ko" in line for line in lines)
    assert hcall_module_for(release, cache=tmp_path, log=lines.append) == built   # cached
    with pytest.raises(LabBuildError, match=r"no linux-headers-9\.9\.9-powerpc64le \(ppc64el\)"):
        hcall_module_for("9.9.9-powerpc64le", cache=tmp_path, log=lines.append)
