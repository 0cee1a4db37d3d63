"""How long an L1 let each run of its L2s' vCPUs last, from the L1 kernel's own tracepoints.

An L1 bounds every L2 run (one H_ENTER_NESTED or H_GUEST_RUN_VCPU) by its own
next timer event (Linux `kvmhv_p9_guest_entry`: the run's `hdec_expiry`), a few
milliseconds away (4 ms at HZ=250), and its L0 must end the run then with an
HDEC exit.  Around a `with` block, `L2Runs` times every run in the L1 kernel
itself: in a trace instance of its own (apart from the hcall trace,
`powernest.hcalls.trace`), a histogram trigger on the `kvm_hv` tracepoint
`kvm_guest_enter` stamps each CPU's entry, one on `kvm_guest_exit` keeps the
longest enter-to-exit time and the exit's fields (`onmax().save()`).  Nothing is
written to a ring buffer, no run is lost to a full one, and reading the result is
one small file.  A run that lasted seconds means the L0 lost an HDEC
(`nested.HDEC_LOST`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from powernest.console import GuestCrash
from powernest.errors import PowernestError
from powernest.shell import Runner

INSTANCE = "/sys/kernel/tracing/instances/powernest-l2-runs"
_ENTER = "hist:keys=common_cpu:pn_entered=common_timestamp.usecs"
_EXIT = ("hist:keys=common_cpu:pn_run=common_timestamp.usecs-$pn_entered:"
         "onmax($pn_run).save(vcpu_id,trap,pc,msr)")
# $1 the instance, $2 the enter trigger, $3 the exit trigger.  The exit's trigger uses
# the enter's variable, so it goes first.
_REMOVE = ('e="$1/events/kvm_hv"; [ -d "$1" ] || exit 0; '
           'echo "!$3" >> "$e/kvm_guest_exit/trigger"; '
           'echo "!$2" >> "$e/kvm_guest_enter/trigger"; rmdir "$1"')
_START = ('(' + _REMOVE + ') 2>/dev/null; mkdir "$1" && '
          'echo "$2" >> "$1/events/kvm_hv/kvm_guest_enter/trigger" && '
          'echo "$3" >> "$1/events/kvm_hv/kvm_guest_exit/trigger"')
_READ = 'cat "$1/events/kvm_hv/kvm_guest_exit/hist"'
# One line per CPU: its runs, then the longest (in microseconds) and that exit's fields.
_ENTRY = re.compile(r"hitcount:\s*(\d+)\s+max:\s*(\d+)\s+vcpu_id:\s*(-?\d+)\s+trap:\s*(-?\d+)"
                    r"\s+pc:\s*(\d+)\s+msr:\s*(\d+)")
READ_TIMEOUT = 30.0
READ_TRIES = 3


@dataclass(frozen=True)
class L2Run:
    """The longest L2 run seen: its seconds, the exit that ended it, and how many runs
    ended while the L1 watched."""

    seconds: float
    exit: str
    runs: int

    def __str__(self) -> str:
        return f"{self.seconds:.3f} s (the longest of {self.runs} runs), ended by: {self.exit}"


def longest(hist: str) -> L2Run | None:
    """The longest run in the exit trigger's histogram text (None: no run ended)."""
    entries = [(int(m[2]), m) for m in _ENTRY.finditer(hist)]
    if not entries:
        return None
    micros, worst = max(entries, key=lambda entry: entry[0])
    exit = (f"VCPU {worst[3]}: trap=0x{int(worst[4]) & 0xffffffff:x} pc=0x{int(worst[5]):x} "
            f"msr=0x{int(worst[6]):x}")
    return L2Run(micros / 1e6, exit, sum(int(m[1]) for _, m in entries))


class L2Runs:
    """The L2 runs of one L1 while a `with` block runs: then `longest` (None if the L1
    could not time them, `untraced` says why, or no run ended)."""

    def __init__(self, l1: Runner) -> None:
        self.l1 = l1
        self.longest: L2Run | None = None
        self.untraced = ""

    def __enter__(self) -> L2Runs:
        result = self.l1.run(["sh", "-c", _START, "sh", INSTANCE, _ENTER, _EXIT])
        if not result.ok:
            self.untraced = f"cannot time the L1's guest entries: {result.stdout.strip()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.untraced:
            return
        for _ in range(READ_TRIES):
            try:
                hist = self.l1.run(["sh", "-c", _READ, "sh", INSTANCE],
                                   timeout=READ_TIMEOUT, check=True).stdout
                self.longest = longest(hist)
                self.l1.run(["sh", "-c", _REMOVE + "; true", "sh", INSTANCE, _ENTER, _EXIT])
                return
            except GuestCrash:   # the rest of an L1 incident printed meanwhile: read again
                continue
            except PowernestError as error:   # an L1 that no longer answers
                self.untraced = f"the L1's runs could not be read: {str(error).splitlines()[0]}"
                return
        self.untraced = "the L1's runs could not be read: its console kept showing a crash"
