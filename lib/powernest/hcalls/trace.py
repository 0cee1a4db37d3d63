"""Passive evidence of an L1's hcalls: its kernel's hcall tracepoints, counted.

Every traced hcall of a pseries Linux kernel (kvm-hv's H_GUEST_* or
H_ENTER_NESTED among them) passes the tracepoints `powerpc:hcall_entry`,
printed `hcall_entry: opcode=%lu`, and `powerpc:hcall_exit`, printed
`hcall_exit: opcode=%lu retval=%ld` (opcodes in decimal).  `start` enables
just those two in the L1's tracefs; `collect` returns what was recorded since
the last collect as an `HcallSummary`: per hcall, its return codes and counts.

The L1 is driven over a slow serial console, so the events are counted in
the L1 (busybox awk) and only the counts cross it, checked by their MD5
(kernel messages may land in the middle of a line there).  The hcalls of
that console itself (H_GET_TERM_CHAR, H_PUT_TERM_CHAR) are filtered out.

`collect` swaps the trace buffer with tracefs' spare one (`echo 1 >
snapshot`): recording goes on in the empty buffer while the full one is read
and cleared, so no event falls between read and clear.  The buffer keeps the
newest events: when it overflows, the oldest are lost, and the summary says
how many (`lost`, from the header's entries-in-buffer/entries-written).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from powernest.errors import PowernestError
from powernest.hcalls import numbers
from powernest.shell import Result, Runner

if TYPE_CHECKING:
    from powernest.l2 import L2Host

BUFFER_KB = 16384   # per CPU, twice (the spare): 700k events, kvm-hv's load + an L2 + 10 s idle
CONSOLE_HCALLS = (numbers.opcode("H_GET_TERM_CHAR"), numbers.opcode("H_PUT_TERM_CHAR"))
SUMMARY_FILE = "/tmp/.pn-hcalls"
COLLECT_TIMEOUT = 300.0        # a full buffer (700k events) takes about 10 s to count
READ_TRIES = 3

# Find tracefs (mounting it, or debugfs, if needed) and cd into it.
_TRACEFS = """
t=/sys/kernel/tracing
[ -e $t/trace ] || mount -t tracefs nodev $t 2>/dev/null
if [ ! -e $t/trace ]; then
    t=/sys/kernel/debug/tracing
    [ -e $t/trace ] || mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
fi
cd $t 2>/dev/null && [ -e trace ] || { echo "pn-hcalls: no tracefs"; exit 1; }
[ -e snapshot ] || { echo "pn-hcalls: tracefs has no snapshot (CONFIG_TRACER_SNAPSHOT)"; exit 1; }
"""

# $1 buffer size (KiB per CPU), $2 event filter.
_START = _TRACEFS + """
set -e
echo 0 > tracing_on
echo powerpc:hcall_entry powerpc:hcall_exit > set_event
echo "$2" > events/powerpc/hcall_entry/filter
echo "$2" > events/powerpc/hcall_exit/filter
echo "$1" > buffer_size_kb
echo 1 > snapshot
echo 2 > snapshot
echo > trace
echo 1 > tracing_on
"""

# stdin: trace lines without context (`hcall_exit: opcode=1148 retval=-56`);
# stdout: `<count> <line>` for each distinct hcall line.
COUNT = ("awk '{ n[$0]++ } END { for (k in n) print n[k], k }' | "
         "grep -E '^[0-9]+ hcall_(entry: opcode=[0-9]+|exit: opcode=[0-9]+ retval=-?[0-9]+)$'")

# $1 the summary file.  Swap, count the spare buffer, clear it, ship the counts.
# The header (with context-info) holds the lost count; lines without it count faster.
_COLLECT = _TRACEFS + f"""
set -e
echo 1 > snapshot
echo 1 > options/context-info
head -n 3 snapshot | awk -F'[ /]+' '/entries-written:/ {{ print "lost", $5 - $4 }}' > "$1"
echo 0 > options/context-info
{{ {COUNT} || true; }} < snapshot >> "$1"
echo 1 > options/context-info
echo 2 > snapshot
cat "$1"; md5sum "$1"
"""

ENTER_NESTED = numbers.opcode("H_ENTER_NESTED")
_LOST = re.compile(r"lost (\d+)")
_ENTRY = re.compile(r"(\d+) hcall_entry: opcode=(\d+)")
_EXIT = re.compile(r"(\d+) hcall_exit: opcode=(\d+) retval=(-?\d+)")
_MD5 = re.compile(r"([0-9a-f]{32})  \S+")


class HcallTraceError(PowernestError):
    """The L1's tracefs could not be set up or read."""


def hcall_name(opcode: int) -> str:
    """`H_GUEST_RUN_VCPU` for 0x480; hex (`0x31C`) for an opcode numbers.py does not name."""
    try:
        return numbers.opcode_name(opcode)
    except KeyError:
        return f"0x{opcode:X}"


def return_name(opcode: int, rc: int) -> str:
    """`H_P3` for -56; H_ENTER_NESTED returns the L2's interrupt vector (`trap 0xC00`).

    Linux's kvmhv_vcpu_entry_p9_nested takes H_ENTER_NESTED's r3 as the trap;
    QEMU's spapr_exit_nested_hv sets it to the vector that ended the L2's run.
    """
    if opcode == ENTER_NESTED and rc > 0:
        return f"trap 0x{rc:X}"
    return numbers.rc_name(rc)


@dataclass(frozen=True)
class HcallSummary:
    """The hcalls recorded between two collects: return codes seen, with counts."""

    returns: Mapping[tuple[int, int], int] = field(default_factory=dict)  # (opcode, rc)
    calls: Mapping[int, int] = field(default_factory=dict)   # opcode: entries seen
    lost: int = 0   # events the full buffer overwrote before they were read

    def __add__(self, other: HcallSummary) -> HcallSummary:
        """Both summaries' counts together (a later collect added to an earlier one)."""
        return HcallSummary(dict(Counter(self.returns) + Counter(other.returns)),
                            dict(Counter(self.calls) + Counter(other.calls)),
                            self.lost + other.lost)

    def count(self, hcall: str | int, rc: str | int) -> int:
        """How often `hcall` returned `rc`; each by name ("H_P3") or number."""
        opcode = numbers.opcode(hcall) if isinstance(hcall, str) else hcall
        value = numbers.rc(rc) if isinstance(rc, str) else rc
        return self.returns.get((opcode, value), 0)

    def unreturned(self, opcode: int) -> int:
        """Entries of `opcode` with no exit recorded (yet, or lost)."""
        returned = sum(n for (op, _), n in self.returns.items() if op == opcode)
        return max(0, self.calls.get(opcode, 0) - returned)

    def line(self, opcode: int) -> str:
        """`H_GUEST_SET_STATE: H_SUCCESS x9, H_P3 x3`, most frequent first."""
        seen = sorted(((n, rc) for (op, rc), n in self.returns.items() if op == opcode),
                      key=lambda item: (-item[0], item[1]))
        parts = [f"{return_name(opcode, rc)} x{n}" for n, rc in seen]
        if self.unreturned(opcode):
            parts.append(f"no exit x{self.unreturned(opcode)}")
        return f"{hcall_name(opcode)}: {', '.join(parts)}"

    def __str__(self) -> str:
        opcodes = {op for op, _ in self.returns} | set(self.calls)
        lines = sorted(self.line(op) for op in opcodes)
        if self.lost:
            lines.append(f"lost {self.lost} events: the trace buffer overflowed")
        return "\n".join(lines)


def start(runner: Runner, buffer_kb: int = BUFFER_KB) -> None:
    """Record the L1's hcalls from now on, in an empty buffer of `buffer_kb` per CPU.

    Idempotent: a second start leaves the same state (tracing on, buffers empty).
    The spare buffer `collect` swaps with is allocated here, as big again.
    """
    excluded = " && ".join(f"opcode != {op}" for op in CONSOLE_HCALLS)
    result = runner.run(["sh", "-c", _START, "sh", str(buffer_kb), excluded])
    _check(result, "start hcall tracing")


def collect(runner: Runner) -> HcallSummary:
    """What the L1 recorded since `start` or the last collect; clears it."""
    result = runner.run(["sh", "-c", _COLLECT, "sh", SUMMARY_FILE], timeout=COLLECT_TIMEOUT)
    _check(result, "collect the hcall trace")
    for _ in range(READ_TRIES):
        summary = verified(result.stdout)
        if summary is not None:
            return summary
        result = runner.run(["sh", "-c", 'cat "$1"; md5sum "$1"', "sh", SUMMARY_FILE])
    raise HcallTraceError(f"the hcall counts in {SUMMARY_FILE} could not be read intact "
                          f"in {READ_TRIES} tries; last output:\n{result.stdout[-2000:]}")


def _check(result: Result, what: str) -> None:
    if not result.ok:
        raise HcallTraceError(f"could not {what} (exit {result.exit_code}): "
                              f"{(result.stdout + result.stderr).strip()[-2000:]}")


def verified(output: str) -> HcallSummary | None:
    """The summary in a collect's output if its MD5 matches; None if the console mangled it."""
    lines = output.replace("\r", "").split("\n")
    records = [line for line in lines
               if _LOST.fullmatch(line) or _ENTRY.fullmatch(line) or _EXIT.fullmatch(line)]
    digests = [m[1] for m in map(_MD5.fullmatch, lines) if m]
    text = "".join(f"{line}\n" for line in records)
    if not digests or hashlib.md5(text.encode()).hexdigest() != digests[-1]:  # noqa: S324
        return None
    return parse(records)


def parse(records: list[str]) -> HcallSummary:
    """An `HcallSummary` from the counted lines (`lost N`, `N hcall_exit: ...`)."""
    returns: Counter[tuple[int, int]] = Counter()
    calls: Counter[int] = Counter()
    lost = 0
    for line in records:
        if m := _EXIT.fullmatch(line):
            returns[int(m[2]), int(m[3])] += int(m[1])
        elif m := _ENTRY.fullmatch(line):
            calls[int(m[2])] += int(m[1])
        elif m := _LOST.fullmatch(line):
            lost += int(m[1])
    return HcallSummary(dict(returns), dict(calls), lost)


class HcallTraces:
    """The hcalls kvm-hv made in each traced L1 of a run, summed since it was traced.

    `start` before kvm-hv loads; `total` after each case that used the L1.  A
    kernel without tracefs is noted, never an error: the evidence is passive.
    """

    def __init__(self) -> None:
        self._totals: dict[str, HcallSummary] = {}
        self.untraced: dict[str, str] = {}   # L1 name: why it is not traced

    def start(self, l1: L2Host) -> None:
        try:
            start(l1)
        except PowernestError as exc:   # a trace error, a shell or console that failed
            self.untraced[l1.name] = str(exc).splitlines()[0]
        else:
            self._totals[l1.name] = HcallSummary()

    def total(self, l1: L2Host) -> str:
        """Every hcall traced in `l1` so far, one `; `-separated line; "" if untraced."""
        if l1.name not in self._totals:
            return self.untraced.get(l1.name, "")
        try:
            self._totals[l1.name] += collect(l1)
        except PowernestError as exc:   # a trace error, a shell or console that failed
            return f"not collected: {str(exc).splitlines()[0]}"
        return "; ".join(str(self._totals[l1.name]).splitlines())
