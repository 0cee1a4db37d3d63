"""Guest specs to argv, QEMU's messages parsed, and real QEMU accepting or refusing caps."""

from __future__ import annotations

import shutil

import pytest

from powernest.local import LocalShell
from powernest.qemu import LAB_KERNEL_ARGS, GuestSpec, check_start, cpu_models, errors, version

NEEDS_QEMU = pytest.mark.skipif(shutil.which("qemu-system-ppc64") is None,
                                reason="qemu-system-ppc64 is not installed (make setup)")


def test_l1_argv() -> None:
    spec = GuestSpec(name="g", kernel="/k", initrd="/i", machine_props=("cap-nested-hv=on",),
                     cpu="power10", pidfile="/tmp/g.pid")
    argv = spec.argv()
    assert argv[argv.index("-M") + 1] == "pseries,x-vof=on,cap-nested-hv=on"
    assert "-nographic" in argv and argv[argv.index("-pidfile") + 1] == "/tmp/g.pid"
    assert argv[-2:] == ["-append", f"console=hvc0 {LAB_KERNEL_ARGS}"]


def test_l2_argv_with_pipe_console() -> None:
    spec = GuestSpec(name="l2", kernel="/k", accel="kvm", cpu="host", firmware="slof",
                     console_pipe="/tmp/l2", daemonize=True)
    argv = spec.argv()
    assert argv[argv.index("-M") + 1] == "pseries"
    assert "pipe,id=con0,path=/tmp/l2" in argv and "-daemonize" in argv
    assert "-nographic" not in argv


def test_errors_keep_hints_and_drop_warnings() -> None:
    out = ("qemu-system-ppc64: warning: TCG doesn't support requested feature, cap-ibs\n"
           "qemu-system-ppc64: Nested-HV APIs are mutually exclusive\n"
           "Please use either cap-nested-hv or cap-nested-papr to proceed.\n")
    assert errors(out) == ["Nested-HV APIs are mutually exclusive\n"
                           "Please use either cap-nested-hv or cap-nested-papr to proceed."]


@NEEDS_QEMU
def test_real_qemu_version_and_start_check() -> None:
    shell = LocalShell()
    v = version(shell, "qemu-system-ppc64")
    assert v is not None and v >= (9, 0, 0)
    ok = check_start(shell, GuestSpec(name="t-ok", kernel="", cpu="power9",
                                      machine_props=("cap-nested-papr=on",)))
    assert ok.accepted and not ok.errors
    bad = check_start(shell, GuestSpec(name="t-bad", kernel="", cpu="power8",
                                       machine_props=("cap-nested-hv=on",)))
    assert not bad.accepted
    assert bad.errors[0].startswith("Nested-HV only supported on POWER9 and later")


@NEEDS_QEMU
def test_real_qemu_cpu_models() -> None:
    models = cpu_models(LocalShell(), "qemu-system-ppc64")
    assert {"power8", "power9", "power10"} <= models
