"""hcall tracing in the L1: counting and parsing on captured samples, then for
real in a nested-papr L1 that boots one L2."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from powernest.guests import L1Guest
from powernest.hcalls import numbers, trace
from powernest.hcalls.trace import HcallSummary, HcallTraceError
from powernest.l2 import L2Guest
from powernest.lab import LabImages
from powernest.local import LocalShell
from powernest.qemu import GuestSpec
from powernest.shell import Result

# A 6.12 L1's trace with context-info off, as collect counts it (nested-papr,
# an L2 starting: H_GUEST_CREATE, then H_GUEST_SET_STATE failing with H_P3).
RAW_TRACE = """\
# tracer: nop
#
hcall_entry: opcode=1136
hcall_exit: opcode=1136 retval=0
hcall_entry: opcode=1148
hcall_exit: opcode=1148 retval=0
hcall_entry: opcode=796
hcall_exit: opcode=796 retval=0
hcall_entry: opcode=1148
hcall_exit: opcode=1148 retval=-56
hcall_entry: opcode=1152
hcall_exit: opcode=1152 retval=0
hcall_entry: opcode=1152
hcall_exit: opcode=1152 retval=0
"""

# What a collect printed on a nested-papr L1's console after one L2 boot and stop.
COLLECTED = """\
lost 0
1 hcall_entry: opcode=1160
1 hcall_entry: opcode=63496
10647 hcall_entry: opcode=1152
3612 hcall_entry: opcode=1144
1 hcall_entry: opcode=1136
1 hcall_exit: opcode=63496 retval=-2
9 hcall_exit: opcode=1148 retval=0
12 hcall_entry: opcode=1148
1 hcall_exit: opcode=456 retval=0
1 hcall_entry: opcode=456
3612 hcall_exit: opcode=1144 retval=0
1 hcall_exit: opcode=1136 retval=0
3 hcall_exit: opcode=1148 retval=-56
10647 hcall_exit: opcode=1152 retval=0
1 hcall_exit: opcode=1160 retval=0
1 hcall_exit: opcode=1140 retval=0
24 hcall_exit: opcode=796 retval=0
24 hcall_entry: opcode=796
1 hcall_entry: opcode=1140
02407ccbeefef010b0a4daec4fc82c77  /tmp/.pn-hcalls
"""

SUMMARY = """\
H_GET_CPU_CHARACTERISTICS: H_SUCCESS x1
H_GUEST_CREATE: H_SUCCESS x1
H_GUEST_CREATE_VCPU: H_SUCCESS x1
H_GUEST_DELETE: H_SUCCESS x1
H_GUEST_GET_STATE: H_SUCCESS x3612
H_GUEST_RUN_VCPU: H_SUCCESS x10647
H_GUEST_SET_STATE: H_SUCCESS x9, H_P3 x3
H_SET_MODE: H_SUCCESS x24
H_TLB_INVALIDATE: H_FUNCTION x1"""

KERNEL_LINE = "[   89.139616] KVM-NESTEDv2: couldn't register the L2 VPA (rc=-56)"


class Replies:
    """A runner that answers each command with the next of `outputs`."""

    def __init__(self, *outputs: str) -> None:
        self.outputs = list(outputs)
        self.commands: list[Sequence[str]] = []

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        self.commands.append(argv)
        return Result(" ".join(argv), 0, self.outputs.pop(0))


def test_the_count_pipeline_on_a_real_trace() -> None:
    done = subprocess.run(["sh", "-c", trace.COUNT], input=RAW_TRACE, capture_output=True,
                          text=True, check=True)
    assert sorted(done.stdout.splitlines()) == sorted([
        "1 hcall_entry: opcode=1136", "1 hcall_exit: opcode=1136 retval=0",
        "2 hcall_entry: opcode=1148", "1 hcall_exit: opcode=1148 retval=0",
        "1 hcall_exit: opcode=1148 retval=-56", "1 hcall_entry: opcode=796",
        "1 hcall_exit: opcode=796 retval=0", "2 hcall_entry: opcode=1152",
        "2 hcall_exit: opcode=1152 retval=0"])


def test_collect_summarizes_what_the_console_said() -> None:
    console = COLLECTED.replace("3 hcall_exit", f"{KERNEL_LINE}\n3 hcall_exit")
    summary = trace.collect(Replies(console))
    assert str(summary) == SUMMARY
    assert summary.count("H_GUEST_SET_STATE", "H_P3") == 3
    assert summary.count(0x47C, -56) == 3 and summary.count("H_GUEST_SET_STATE", 0) == 9
    assert summary.count("H_GUEST_RUN_VCPU", "H_SUCCESS") == 10647
    assert summary.count("H_ENTER_NESTED", "H_SUCCESS") == 0
    assert summary.lost == 0 and summary.calls[0x47C] == 12


def test_a_line_broken_by_the_kernel_is_read_again() -> None:
    broken = COLLECTED.replace("3 hcall_exit: opcode=1148 retval=-56",
                               f"3 hcall_exit: opcode=11{KERNEL_LINE}\n48 retval=-56")
    runner = Replies(broken, COLLECTED)
    assert trace.collect(runner).count("H_GUEST_SET_STATE", "H_P3") == 3
    assert runner.commands[1][-1] == trace.SUMMARY_FILE
    with pytest.raises(HcallTraceError, match="could not be read intact"):
        trace.collect(Replies(*[broken] * (trace.READ_TRIES + 1)))


def test_lost_events_unreturned_calls_and_traps_are_shown() -> None:
    summary = HcallSummary({(0xF804, 0xC00): 8070, (0xF804, 0x980): 976, (0xF804, -4): 1},
                           {0xF804: 9049}, lost=37396)
    assert str(summary).splitlines() == [
        "H_ENTER_NESTED: trap 0xC00 x8070, trap 0x980 x976, H_PARAMETER x1, no exit x2",
        "lost 37396 events: the trace buffer overflowed"]


def test_summaries_of_two_collects_add_up() -> None:
    first = HcallSummary({(0x47C, -56): 3, (0x47C, 0): 9}, {0x47C: 12})
    second = HcallSummary({(0x47C, 0): 1, (0x480, 0): 5}, {0x47C: 1, 0x480: 5}, lost=2)
    total = first + second
    assert total.count("H_GUEST_SET_STATE", "H_P3") == 3
    assert total.count("H_GUEST_SET_STATE", "H_SUCCESS") == 10
    assert total.count("H_GUEST_RUN_VCPU", 0) == 5 and total.lost == 2


def test_a_failed_setup_says_why() -> None:
    class Fails(Replies):
        def run(self, argv: Sequence[str], timeout: float | None = None,
                check: bool = False) -> Result:
            return Result("sh", 1, "pn-hcalls: no tracefs\n")

    with pytest.raises(HcallTraceError, match="no tracefs"):
        trace.start(Fails())


def test_an_l2_boot_under_nested_papr(tmp_path: Path, lab: LabImages) -> None:
    """kvm-hv's v2 hcalls, and QEMU's H_P3 for the L2 VPA (qemu-v2-vpa-element)."""
    spec = GuestSpec(name="pn.hcall-trace.l1", kernel=str(lab.kernels["6.12"]),
                     initrd=str(lab.l1_initrd), machine_props=("cap-nested-papr=on",),
                     cpu="power10", pidfile=str(tmp_path / "l1.pid"))
    l1 = L1Guest(LocalShell(), spec, tmp_path / "l1.log", 180, 60)
    try:
        l1.start()
        trace.start(l1)
        trace.start(l1)   # idempotent
        assert l1.load_kvm().ok
        l2 = L2Guest.in_l1(l1, tmp_path, 120)
        try:
            l2.start()
        finally:
            l2.stop()
        summary = trace.collect(l1)
        deadline = time.monotonic() + 20   # the L1 kernel may delete the L2 a moment later
        while not summary.calls.get(numbers.opcode("H_GUEST_DELETE")) and \
                time.monotonic() < deadline:
            time.sleep(0.5)
            summary += trace.collect(l1)
        again = trace.collect(l1)
    finally:
        l1.stop()
    assert summary.count("H_GUEST_SET_STATE", "H_P3") >= 1, summary
    assert summary.count("H_GUEST_RUN_VCPU", "H_SUCCESS") > 0, summary
    for hcall in ("H_GUEST_GET_CAPABILITIES", "H_GUEST_SET_CAPABILITIES", "H_GUEST_CREATE",
                  "H_GUEST_CREATE_VCPU", "H_GUEST_DELETE"):
        assert summary.count(hcall, "H_SUCCESS") == 1, summary
    assert summary.lost == 0
    assert again.count("H_GUEST_RUN_VCPU", "H_SUCCESS") == 0, again   # collect cleared it
