"""How long an L1 let each run of its L2s' vCPUs last, from the L1 kernel's own trace.

An L1 bounds every L2 run (one H_ENTER_NESTED or H_GUEST_RUN_VCPU) by its own
next timer event (Linux `kvmhv_p9_guest_entry`: the run's `hdec_expiry`), a few
milliseconds away (4 ms at HZ=250), and its L0 must end the run then with an
HDEC exit.  Around a `with` block, `L2Runs` records the `kvm_hv` tracepoints
`kvm_guest_enter` and `kvm_guest_exit` in a trace instance of its own (apart
from the hcall trace, `powernest.hcalls.trace`), then keeps the longest run:
one that lasted seconds means the L0 lost an HDEC (`nested.HDEC_LOST`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from powernest.console import GuestCrash
from powernest.errors import PowernestError
from powernest.shell import Runner

INSTANCE = "/sys/kernel/tracing/instances/powernest-l2-runs"
BUFFER_KB = 4096   # per CPU; a 2-vCPU L2's boot is about 1.5 MB of these events
_EVENTS = ("kvm_hv/kvm_guest_enter", "kvm_hv/kvm_guest_exit")
_START = ('rmdir "$1" 2>/dev/null; mkdir "$1" && echo "$2" > "$1/buffer_size_kb" && '
          + " && ".join(f'echo 1 > "$1/events/{e}/enable"' for e in _EVENTS))
# The longest enter-to-exit time on one CPU in the trace, in seconds, and the exit's line.
_LONGEST = ("awk '/^# entries-in-buffer\\/entries-written:/ { split($3, n, \"/\") } "
            "/kvm_guest_(enter|exit)/ { t = \"\"; c = \"\"; "
            "for (i = 1; i <= NF; i++) { if ($i ~ /^\\[[0-9]+\\]$/) c = $i; "
            "if ($i ~ /^[0-9]+[.][0-9]+:$/) { t = $i + 0; break } } "
            "if (t == \"\") next; if ($0 ~ /kvm_guest_enter/) { at[c] = t; next } "
            "if (c in at && t - at[c] >= worst) { worst = t - at[c]; line = $0 } delete at[c] } "
            "END { if (line != \"\") printf \"PN-LONGEST %.3f %d %d %s\\n\", worst, n[1], n[2], "
            "line }' \"$1/trace\"")
_RESULT = re.compile(r"PN-LONGEST (\d+\.\d+) (\d+) (\d+) +(.*)")
READ_TIMEOUT = 60.0
READ_TRIES = 3


@dataclass(frozen=True)
class L2Run:
    """The longest L2 run seen: its seconds, the L1 kernel's line for its exit, and how
    many of the events written the trace kept (a long boot's first ones are lost)."""

    seconds: float
    exit: str
    kept: int
    written: int

    def __str__(self) -> str:
        lost = (f" (of the last {self.kept} of {self.written} events)"
                if self.kept < self.written else "")
        return f"{self.seconds:.3f} s{lost}, ended by: {self.exit.strip()}"


class L2Runs:
    """The L2 runs of one L1 while a `with` block runs: then `longest` (None if the L1
    could not trace them, `untraced` says why, or no run ended)."""

    def __init__(self, l1: Runner) -> None:
        self.l1 = l1
        self.longest: L2Run | None = None
        self.untraced = ""

    def __enter__(self) -> L2Runs:
        result = self.l1.run(["sh", "-c", _START, "sh", INSTANCE, str(BUFFER_KB)])
        if not result.ok:
            self.untraced = f"cannot trace the L1's guest entries: {result.stdout.strip()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.untraced:
            return
        for _ in range(READ_TRIES):
            try:
                found = _RESULT.search(self.l1.run(["sh", "-c", _LONGEST, "sh", INSTANCE],
                                                   timeout=READ_TIMEOUT, check=True).stdout)
                self.longest = (L2Run(float(found[1]), found[4], int(found[2]), int(found[3]))
                                if found else None)
                self.l1.run(["sh", "-c", 'rmdir "$1" 2>/dev/null; true', "sh", INSTANCE])
                return
            except GuestCrash:   # the rest of an L1 incident printed meanwhile: read again
                continue
            except PowernestError as error:   # an L1 that no longer answers
                self.untraced = f"the L1's trace could not be read: {str(error).splitlines()[0]}"
                return
        self.untraced = "the L1's trace could not be read: its console kept showing a crash"
