"""L2s: a guest started by an L1's own QEMU under `-accel kvm`.

The L1 is an `L2Host`: an L1 the suite booted, or a PowerVM LPAR.  `start()`
runs the L1's QEMU with `-accel kvm -daemonize`; the L2 console is a FIFO
pair inside the L1 whose output a `cat` in the L1 appends to a file.  The
controller fetches what is new in that file, the L1 first waiting until there
is some (base64, so the L2's own crash text cannot be mistaken for the L1's),
and mirrors it to the local console log; commands
reach the L2 shell at its prompt through the input FIFO, framed like the L1's
(`console.Framing`).  Verbs read what the L2 reported: `runs_under_kvm()`,
`cpus()`, `memory_mib()`; `kill()` and `reboot_from_inside()` act on it.

Every wait also watches what proves the L2 will never answer: its QEMU gone,
or the L1 kernel's KVM printing a vCPU dump after the launch (`L2WontRun`,
with those lines), so a broken L0 turns a case red in seconds, not at the end
of its boot timeout.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from powernest import kvmprobe, naming
from powernest.bootwatch import BootStalled, Milestone, Step
from powernest.console import (
    ConsoleClosed,
    ConsoleError,
    ConsoleTimeout,
    Frame,
    Framing,
    GuestCrash,
    find_failure,
    intact,
    tail,
)
from powernest.errors import PowernestError
from powernest.qemu import LAB_KERNEL_ARGS, GuestSpec, GuestStartError, errors
from powernest.shell import CommandFailed, Result, Runner, kill_pidfile, quote

L2_READY = r"POWERNEST-L2-READY kernel=(\S+) uptime="
L2_CPUINFO_END = "POWERNEST-L2-CPUINFO-END"
L2_PROMPT = "powernest-l2# "
_CUT_IN = re.compile(r"(?<=[^\r\n])\[ *\d+\.\d+\] [^\r\n]*\r*\n")   # a kernel line mid-line


def _uncut(marker: str) -> str:
    """A pattern for `marker` that also finds it with a kernel line printed into it (the
    kernel may print while the L2 init does: `POWERNEST-L2-CPU[ 4.19] hrtimer: ...`
    newline `INFO-END`)."""
    return f"(?:{_CUT_IN.pattern})?".join(re.escape(c) for c in marker)


# What an L2 boot passes (`powernest.bootwatch`): its first console line (at loglevel 5 a
# kernel warning, about 0.3 s of its own clock in), its init's banner, its prompt.
BANNER = _uncut(L2_READY.split(" ", 1)[0])
PROMPT_NEXT = _uncut(L2_CPUINFO_END)   # the shell's prompt follows
L2_MILESTONES = (Milestone("first output", r"\S"), Milestone("banner", BANNER),
                 Milestone("prompt", PROMPT_NEXT))
PROBE_MILESTONES = (Milestone("answer", re.escape(kvmprobe.SAYS.decode())),)
# An L2 reboot takes about 6 s (LAB-NOTES), about as long as its first boot; one that has
# not shown a new banner after 45 s, and 3 times that boot, is stuck, not slow (the kvm
# twin beside the powervm twin boots an L2 in 30 to 120 s).
L2_REBOOT_TIMEOUT = 45.0
L2_REBOOT_PER_BOOT = 3.0
# An L2 shell answers `uname -r` in 0.3 s (v1, measured), in make premerge beside another
# worker in under a second; one that has not in 3 s does not read its input.
L2_SHELL_TIMEOUT = 3.0
# A wait blocks in the L1 until the L2 console has new output or its QEMU is gone, for
# at most a slice; then it checks what proves the L2 will not come (`_check_alive`).
WAIT_SLICE = 2.0
# Each console byte costs the L1 an exit; warnings, crash traces and errors still show
# (the boot lines the verbs read, the L2 init prints from its kernel log).
L2_APPEND = f"console=hvc0 loglevel=5 {LAB_KERNEL_ARGS}"
# KVM-HV's register dump for a vCPU exit it cannot handle (kvmppc_dump_regs, then the
# `trap=... | pc=... | msr=...` line of kvmppc_handle_exit_hv): the L2 is not running.
KVM_VCPU_DUMP = r"vcpu [0-9a-fx]+ \([0-9]+\):|trap=0x[0-9a-f]+ \| pc=0x"
_RUNNING = "__PN_RUNNING"
_DUMPED = "__PN_KVM_SAID: "


class L2WontRun(ConsoleError):
    """The L1's KVM showed that an L2 cannot run (its vCPU dump); the L2 will not come."""


class L2Host(Runner, Protocol):
    """What an L2 runs in: the commands it needs and where its images are."""

    @property
    def name(self) -> str: ...

    def alive(self) -> bool: ...

    def next_l2_name(self) -> str: ...

    def l2_defaults(self) -> dict[str, Any]:
        """GuestSpec fields for an L2 here: kernel, initrd, data_dir, qemu."""
        ...


class L2Guest:
    """An L2 started inside an L1 under `-accel kvm`; see the module docstring."""

    def __init__(self, l1: L2Host, spec: GuestSpec, log_path: Path,
                 boot_timeout: float) -> None:
        self.l1 = l1
        self.spec = spec
        self.log_path = log_path
        self.boot_timeout = boot_timeout
        self.fifo = spec.console_pipe or f"/tmp/{spec.name}"
        self.text = ""            # everything the L2 console printed so far
        self.kernel_release = ""
        self.boot_seconds = 0.0
        self._framing = Framing("__L2_")
        self._kernel_mark = 1     # the L1 kernel log's first line since the launch
        self._prompt_from = 0     # where the shell's next prompt shows: after its banner

    @classmethod
    def in_l1(cls, l1: L2Host, log_dir: Path, boot_timeout: float,
              machine: Sequence[str] = (), **spec: Any) -> L2Guest:
        """An L2 spec with the L1's defaults and `machine` properties, overridden by `spec`."""
        name = l1.next_l2_name()
        base = GuestSpec(name=name, accel="kvm", cpu="host", memory="512M", append=L2_APPEND,
                         machine_props=("cap-hpt-max-page-size=4k", *machine),
                         console_pipe=f"/tmp/{name}", pidfile=f"/tmp/{name}.pid",
                         daemonize=True, **l1.l2_defaults())
        log_path = log_dir / f"{naming.l2_log_name(l1.name, name)}.log"
        return cls(l1, replace(base, **spec), log_path, boot_timeout)

    def launch(self) -> Result:
        """Start QEMU in the L1; returns its result (non-zero: QEMU refused)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text(f"# in {self.l1.name}: {quote(self.spec.argv())}\n")
        script = ('rm -f "$1.in" "$1.out" "$1.log"; mkfifo "$1.in" "$1.out" && '
                  '{ cat "$1.out" > "$1.log" 2>/dev/null & }')
        self.l1.run(["sh", "-c", script, "sh", self.fifo], check=True)
        lines = self.l1.run(["sh", "-c", "dmesg | wc -l"]).stdout.split()
        self._kernel_mark = int(lines[-1]) + 1 if lines and lines[-1].isdigit() else 1
        result = self.l1.run(self.spec.argv(), timeout=self.boot_timeout)
        with self.log_path.open("a") as log:
            log.write(result.stdout + result.stderr)   # stderr is apart over SSH
        return result

    def _launched(self) -> float:
        """Launch; when it began.  GuestStartError if QEMU refused."""
        started = time.monotonic()
        result = self.launch()
        if not result.ok:
            said = result.stdout + result.stderr
            raise GuestStartError(self.spec.name, errors(said), said, self.log_path)
        return started

    def start(self, steps: Sequence[Step] = ()) -> dict[str, float]:
        """Launch and wait for the L2's prompt, milestone by milestone (`steps`; default:
        each within the boot timeout); how long each step took.  GuestStartError if QEMU
        refused, BootStalled if a milestone did not come within its bound."""
        started = self._launched()
        took = self._watch(started, steps or self._unbounded(L2_MILESTONES))
        match = re.search(L2_READY, self.boot_lines())
        prompt = re.search(PROMPT_NEXT, self.text)
        assert match is not None and prompt is not None   # milestones of the steps
        self.kernel_release = match[1]
        self.boot_seconds = took["first output"] + took["banner"]
        self._prompt_from = prompt.end()
        return took

    def start_probe(self, steps: Sequence[Step] = ()) -> dict[str, float]:
        """Launch a KVM probe (`powernest.kvmprobe`) and wait until it has printed."""
        took = self._watch(self._launched(), steps or self._unbounded(PROBE_MILESTONES))
        self.boot_seconds = took["answer"]
        return took

    def _unbounded(self, milestones: Sequence[Milestone]) -> list[Step]:
        return [Step(m, self.boot_timeout, "the boot timeout") for m in milestones]

    def _watch(self, started: float, steps: Sequence[Step]) -> dict[str, float]:
        """Wait for each step's milestone within its bound (and the whole boot within the
        boot timeout); how long each took, the first since `started`."""
        took: dict[str, float] = {}
        reached, at = "its QEMU started", started
        for step in steps:
            bound = min(step.bound, started + self.boot_timeout - at)
            try:
                self.wait_for(step.milestone.pattern, bound)
            except ConsoleTimeout:
                raise BootStalled(
                    f"{self.spec.name}: its boot stopped after {reached}: no "
                    f"{step.milestone.name} within {bound:.0f} s ({step.basis}), "
                    f"{time.monotonic() - started:.0f} s after its QEMU started; last console "
                    f"lines:\n{tail(self.text)}", self.log_path, step.milestone.name) from None
            now = time.monotonic()
            took[step.milestone.name] = now - at
            reached, at = f"its {step.milestone.name}", now
        return took

    def poll(self, wait: float = 0.0) -> str:
        """Fetch what the L2 console printed since the last poll, first waiting up to
        `wait` seconds in the L1 for something new; fail on a crash."""
        new = self._fetch(len(self.text.encode()), wait)
        if new:
            with self.log_path.open("a") as log:
                log.write(new)
            self.text += new
            failure = find_failure(self.text)
            if failure:
                kind, at = failure
                raise GuestCrash(self.spec.name, kind, tail(self.text[at:], 60), self.log_path)
        return new

    def _fetch(self, offset: int, wait: float = 0.0, tries: int = 3) -> str:
        """The L2 log from byte `offset` on, checked by md5; first, for up to `wait`
        seconds, the L1 waits (in tenths) until the log has grown past `offset`
        or the L2's QEMU is gone: one console round trip, where polling took
        many and slowed the L1 (and the L2 in it) down.  Where the shell's `read`
        can (busybox ash, bash) the wait forks nothing while it waits: a byte read
        from the log, opened at `offset`, says it grew; a timed read on an idle
        FIFO sleeps.  A fork and exec costs the L1 4 to 5 ms under TCG: a `sleep`
        and a `wc` every tenth (dash's wait) slowed the L2 booting beside them by
        a tenth.

        The bytes cross the L1's console, where the L1 kernel may print at any
        moment (under v2 it does at each L2 vCPU start); a chunk whose digest
        does not match is fetched again.
        """
        script = ('read -r pid < "$4" 2>/dev/null; i=0; '
                  'if [ "$3" -gt 0 ] && { read -r -n 1 -t 0 -u 0 c </dev/null 2>/dev/null; '
                  '[ "$?" -le 1 ]; }; then '   # ash, bash: a read with -n, -t and -u
                  '[ -p /tmp/.pn-tick ] || mkfifo /tmp/.pn-tick; : >> "$2"; '
                  'exec 3<> /tmp/.pn-tick 4< "$2"; '
                  'dd bs=1 skip="$(($1 - 1))" count=0 <&4 2>/dev/null; '
                  'while [ "$i" -lt "$3" ] && ! read -r -n 1 -u 4 c '
                  '&& kill -0 "$pid" 2>/dev/null; do read -r -t 0.1 -u 3 c; i=$((i + 1)); '
                  'done; exec 3<&- 4<&-; '
                  'else while [ "$i" -lt "$3" ] && [ "$(wc -c < "$2")" -lt "$1" ] '   # dash
                  '&& kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done; fi; '
                  'tail -c +"$1" "$2" 2>/dev/null | head -c 262144 > /tmp/.pn-chunk; '
                  'base64 /tmp/.pn-chunk; md5sum /tmp/.pn-chunk')
        tenths = round(wait * 10)
        for _ in range(tries):
            result = self.l1.run(["sh", "-c", script, "sh", str(offset + 1),
                                  f"{self.fifo}.log", str(tenths), self.spec.pidfile or ""])
            tenths = 0
            if (text := intact(result.stdout)) is not None:
                return text
        raise ConsoleError(f"{self.spec.name}: the L2 console log could not be read intact "
                           f"through {self.l1.name}'s console in {tries} tries",
                           self.log_path)

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """Read the L2 console until `pattern` shows after offset `since`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        wait = 0.0
        while True:
            new = self.poll(wait)
            match = regex.search(self.text, since)
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConsoleTimeout(
                    f"{self.spec.name}: no {pattern!r} within {timeout:.0f} s; last console "
                    f"lines:\n{tail(self.text)}", self.log_path)
            if wait and not new:   # a slice passed without output: is the L2 still coming?
                self._check_alive(pattern)
            wait = min(WAIT_SLICE, left)

    def _check_alive(self, pattern: str) -> None:
        """Raise if the L2's QEMU is gone or the L1's KVM dumped a vCPU since the launch.

        The L1's own kernel messages may stand between the output's lines on its
        console, so what this reads is tagged."""
        script = ('test -s "$1" && kill -0 "$(cat "$1")" 2>/dev/null && echo "$4"; '
                  'dmesg | tail -n +"$2" | grep -E -A12 "$3" | head -n 40 | sed "s/^/$5/"')
        seen = self.l1.run(["sh", "-c", script, "sh", self.spec.pidfile or "",
                            str(self._kernel_mark), KVM_VCPU_DUMP, _RUNNING, _DUMPED]).stdout
        dump = [line.split(_DUMPED, 1)[1] for line in seen.splitlines() if _DUMPED in line]
        if dump:
            self.poll()
            said = "\n".join(dump)
            raise L2WontRun(f"{self.spec.name}: {self.l1.name}'s KVM dumped a vCPU while "
                            f"waiting for {pattern!r}; the L2 will not run. The L1 kernel "
                            f"said:\n{said}", self.log_path)
        if _RUNNING not in seen:
            self.poll()
            raise ConsoleClosed(f"{self.spec.name}: QEMU exited while waiting for "
                                f"{pattern!r}; last lines:\n{tail(self.text)}", self.log_path)

    def send(self, line: str) -> None:
        """Type a line on the L2 console."""
        self.l1.run(["sh", "-c", 'printf "%s\\n" "$1" > "$2.in"', "sh", line, self.fifo],
                    check=True)

    def _type(self, command: str, timeout: float) -> tuple[Frame, re.Match[str]]:
        """At the shell's prompt (as by hand: a line typed before the shell reads is
        taken at boot, whether or not the console's input interrupts reach the L2),
        type `command` framed; wait (up to `timeout`) until the shell has taken it."""
        self.wait_for(L2_PROMPT, timeout, self._prompt_from)
        frame = self._framing.frame(command)
        since = len(self.text)
        self.send(frame.line)
        return frame, self.wait_for(frame.begin, timeout, since)

    def run(self, argv: Sequence[str], timeout: float = 120.0, check: bool = False) -> Result:
        """Run a command at the L2 shell, framed like the L1's."""
        command = quote(argv)
        frame, begin = self._type(command, timeout)
        end = self.wait_for(frame.end, timeout, begin.end())
        self._prompt_from = end.end()
        output = self.text[begin.end():end.start()].replace("\r", "").strip("\n")
        result = Result(command, int(end[1]), output + "\n" if output else "")
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def cpuinfo(self) -> str:
        """The cpuinfo lines the L2 init printed at boot."""
        text = self.boot_lines()
        start = re.search(L2_READY, text)
        end = text.find(L2_CPUINFO_END)
        if not start or end < 0:
            return ""
        lines = text[start.end():end].replace("\r", "").splitlines()[1:]
        return "\n".join(lines)

    def boot_lines(self) -> str:
        """The console text with the kernel's own messages taken out of the lines they cut
        in two: the L2 init prints boot lines from its kernel log while the kernel may
        print (`[ 0.25] s[ 4.82] hrtimer: interrupt took ... ns` newline `mp: Brought up`)."""
        return _CUT_IN.sub("", self.text)

    def hardware_name(self) -> str:
        """The L2 kernel's `Hardware name:` boot line, as its console printed it.

        `hv:linux,kvm` there means a KVM hypervisor: Linux
        (arch/powerpc/platforms/pseries/setup.c) prints `hv:<compatible>` from the
        device tree's /hypervisor node, which QEMU adds only under KVM.
        """
        match = re.search(r"Hardware name: [^\r\n]*", self.boot_lines())
        return match[0] if match else ""

    def runs_under_kvm(self) -> bool:
        """Whether the L2 kernel saw a KVM hypervisor (`hv:linux,kvm`, see hardware_name)."""
        return "hv:linux,kvm" in self.hardware_name()

    def ready_uptime(self) -> float | None:
        """The L2's uptime, by its own clock, when its init printed its first banner."""
        match = re.search(L2_READY + r"([0-9.]+)", self.boot_lines())
        return float(match[2]) if match else None

    def cpus(self) -> int | None:
        """How many CPUs the L2 kernel brought up (`smp: Brought up 1 node, N CPUs`)."""
        match = re.search(r"smp: Brought up \d+ nodes?, (\d+) CPUs?", self.boot_lines())
        return int(match[1]) if match else None

    def memory_mib(self) -> float | None:
        """The memory size the L2 kernel reported at boot (`Memory: .../<total>K`)."""
        match = re.search(r"Memory: \d+K/(\d+)K", self.boot_lines())
        return int(match[1]) / 1024 if match else None

    def kill(self) -> bool:
        """SIGKILL the L2's QEMU in the L1; whether it is gone within a second."""
        script = ('pid=$(cat "$1") && kill -9 "$pid" && i=0 && while kill -0 "$pid" '
                  '2>/dev/null; do [ "$i" -lt 20 ] && sleep 0.05 && i=$((i + 1)) || exit 1; '
                  'done')
        return self.l1.run(["sh", "-c", script, "sh", self.spec.pidfile or ""]).ok

    def reboot_from_inside(self) -> None:
        """`reboot -f` at the L2's shell; wait until the shell has taken it (within
        `L2_SHELL_TIMEOUT`: a shell that never reads its input will not reboot either),
        then for its next banner (`L2_REBOOT_TIMEOUT`, or 3 times its first boot)."""
        timeout = max(L2_REBOOT_TIMEOUT, L2_REBOOT_PER_BOOT * self.boot_seconds)
        self.wait_for(BANNER, 0)
        _, taken = self._type("reboot -f", L2_SHELL_TIMEOUT)
        self.wait_for(BANNER, timeout, since=taken.end())
        self._prompt_from = self.wait_for(PROMPT_NEXT, timeout, since=taken.end()).end()

    def running(self) -> bool:
        script = 'test -s "$1" && kill -0 "$(cat "$1")" 2>/dev/null'
        return self.l1.run(["sh", "-c", script, "sh", self.spec.pidfile or ""]).ok

    def stop(self) -> None:
        """Kill the L2's QEMU and keep the last of its console; safe to call twice, and
        when its L1 is gone (a crashed console, an LPAR that no longer answers)."""
        if not self.l1.alive():
            return
        with contextlib.suppress(PowernestError):
            self.poll()
        if self.spec.pidfile:   # the L1 kernel destroys the VM as QEMU exits: wait for it
            kill_pidfile(self.l1, self.spec.pidfile, wait=10)
