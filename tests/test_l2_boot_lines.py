"""The L2 verbs read boot lines that a kernel message cut in two on the console."""

from __future__ import annotations

import re
from pathlib import Path

from powernest.l2 import L2_MILESTONES, L2Guest
from powernest.qemu import GuestSpec

# An L2 console of a make run, as its log kept it: the L2 kernel printed its own
# message while the L2 init was printing the `smp:` line from its kernel log.
CUT = ("#1 SMP Debian 6.[    0.611881] nvram: Failed to initialize oops partition!\r\n"
       "[    3.139842] SED: plpks not available\r\n"
       "[    0.000000] Hardware name: IBM pSeries (emulated by qemu) POWER9 (architected) "
       "0x4e1202 0xf000005 hv:linux,kvm pSeries\r\n"
       "[    0.259915] s[    4.820236] hrtimer: interrupt took 16871992 ns\r\n"
       "mp: Brought up 1 node, 2 CPUs\r\n"
       "[    0.409237] Memory: 441424K/524288K available (16256K kernel code)\r\n")


def _l2_that_printed(text: str, tmp_path: Path) -> L2Guest:
    l2 = L2Guest(None, GuestSpec(name="l2-x", kernel="k"),  # type: ignore[arg-type]
                 tmp_path / "l2.log", 5)
    l2.text = text
    return l2


def test_a_line_cut_by_a_kernel_message_still_reads(tmp_path: Path) -> None:
    l2 = _l2_that_printed(CUT, tmp_path)
    assert l2.cpus() == 2
    assert l2.memory_mib() == 512
    assert l2.runs_under_kvm()


def test_whole_lines_stay(tmp_path: Path) -> None:
    l2 = _l2_that_printed(CUT, tmp_path)
    assert "[    3.139842] SED: plpks not available\r\n" in l2.boot_lines()
    assert "[    0.259915] smp: Brought up 1 node, 2 CPUs" in l2.boot_lines()
    assert _l2_that_printed("smp: Brought up 1 node, 1 CPU\r\n", tmp_path).cpus() == 1


# The end of an L2's boot from a make run: the kernel printed into the init's marker.
CUT_MARKER = ("POWERNEST-L2-READY kernel=6.12.95+deb12-powerpc64le uptime=3.35\r\n"
              "MMU\t\t: Radix\r\nplatform\t: pSeries\r\n"
              "POWERNEST-L2-CPU[    4.195757] hrtimer: interrupt took 15073156 ns\r\n"
              "INFO-END\r\n\r\npowernest-l2# ")


def test_milestones_and_verbs_find_a_marker_a_kernel_line_cut(tmp_path: Path) -> None:
    l2 = _l2_that_printed(CUT_MARKER, tmp_path)
    for milestone in L2_MILESTONES:
        assert re.search(milestone.pattern, l2.text), milestone.name
    assert l2.ready_uptime() == 3.35
    assert l2.cpuinfo() == "MMU\t\t: Radix\nplatform\t: pSeries"
    assert not re.search(L2_MILESTONES[2].pattern, CUT_MARKER.replace("INFO-END", "INFO"))
