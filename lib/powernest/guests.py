"""L1s: the `L1` protocol, what every L1 does alike, and the L1 the suite boots.

An L1 is where the cases' L2s run: an `L1Guest` the suite boots with QEMU on
a host (L0), or a PowerVM LPAR it connects to (`powernest.lpar.Lpar`).  Both
implement `L1`; what they do alike (the kernel log, kvm-hv's state, L2
names) is written once in `L1Commands`.

L1Guest lifecycle: `start()` spawns QEMU on the host with the console on a
pty, waits for the L1 init's banner and prompt, and from then on the L1 is
driven through `shell` (a `ConsoleShell`).  `start_from(checkpoint)` instead
restores the state an earlier L1 of the same configuration saved at its
prompt, before kvm-hv loaded (in about a second instead of a boot), or boots
and saves that state when there is none yet or it does not load.  `kexec()` and `reboot()` replace
its kernel and take over the new one's shell.  `stop()` kills QEMU whatever
state the guest is in and is safe to call twice.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from powernest import naming, schedstat
from powernest.console import (
    NOTE,
    Console,
    ConsoleClosed,
    ConsoleError,
    ConsoleShell,
    ConsoleTimeout,
    intact,
    tail,
)
from powernest.l2 import L2Host
from powernest.qemu import (
    GuestSpec,
    GuestStartError,
    SaveFailed,
    errors,
    save_state,
    wait_running,
)
from powernest.shell import Result, Shell, kill_pidfile, quote

L1_READY = r"POWERNEST-L1-READY kernel=\S+ uptime="
L1_PROMPT = "powernest-l1# "
L2_DATA_DIR = "/usr/share/qemu"
L2_KERNEL = "/boot/vmlinux-6.12"
L2_INITRD = "/boot/l2.cpio"
# A restore takes about a second under TCG (at most 3.3 s in 320, on a busy machine), about
# ten on the kvm twin (a KVM L1 of 3 GiB in an emulated POWER9): by accel, one that has
# not answered in three times that failed.
RESTORE_TIMEOUT = {"tcg": 10.0, "kvm": 30.0}
# How often a restoring L1 is asked for its prompt: a mapped-ram state loads in 0.22 s.
RESTORE_POLL = 0.05
# A restore that never answers at its prompt gets a second try.  Before
# `qemu.wait_running`, QEMU 7.2's did 5 times in 100 (none since, in 100), and one on the
# kvm twin was seen in a run (the twin's rate not measured).
RESTORE_TRIES = 2
RESTORED_AGAIN = "restoring again"   # the console log's note of a second try


class L0Died(ConsoleClosed):
    """The L0 QEMU under an L1 ended while the L1 was in use: a finding of its own.

    `said` holds QEMU's own last words (an assertion, a glib error), `words` them
    as one line, `ended` how its process ended, `output` what the L1 printed
    since its last command began.
    """

    def __init__(self, guest: str, closed: ConsoleClosed, said: list[str]) -> None:
        self.said = said
        self.words = "; ".join(said) if said else "it printed no error"
        super().__init__(f"{guest}: its L0 QEMU died ({closed.ended}): {self.words}\n{closed}",
                         closed.log, closed.output, closed.ended)


SANITIZER_LINES = 400   # a sanitizer's report: its frames and shadow map come after the error


def last_words(console_text: str, lines: int = 60) -> list[str]:
    """QEMU's error messages at the end of an L1's console log (its stderr is there too):
    `qemu-system-...: ...` errors, assertion failures, glib's `ERROR:` lines and a
    sanitizer's summary (`SUMMARY: AddressSanitizer: ...`, UBSan's `runtime error:`)."""
    recent = "\n".join(line for line in tail(console_text, lines).splitlines()
                       if not line.startswith(NOTE))
    glib = [line.strip() for line in recent.splitlines() if line.startswith("ERROR:")]
    sanitizer = [line.strip() for line in tail(console_text, SANITIZER_LINES).splitlines()
                 if (line.startswith("SUMMARY: ") and "Sanitizer" in line)
                 or "runtime error:" in line]
    return errors(recent) + glib + sanitizer


def kernel_series(release: str) -> str:
    """'6.12' for '6.12.95+deb12-powerpc64le'."""
    return ".".join(release.split(".")[:2])


@runtime_checkable
class L1(L2Host, Protocol):
    """An L1 the cases run in; see the module docstring."""

    log_path: Path
    kernel_release: str
    boot_seconds: float          # how long it took to start; 0.0 where the suite did not
    started_from: str            # "boot", "checkpoint", or "" (an LPAR: not started)
    kvm_load: Result | None      # what the last load of kvm-hv did

    @property
    def kexecs(self) -> int:
        """Kernels exec'd since the machine's last reset."""
        ...

    @property
    def kernel(self) -> str: ...

    @property
    def expected_release(self) -> str | None:
        """The kernel release the suite booted it with (None: it runs its own)."""
        ...

    def load_kvm(self) -> Result: ...

    def kvm_hv_loaded(self) -> bool: ...

    def has_dev_kvm(self) -> bool: ...

    def dmesg(self) -> str: ...

    def begin_case(self, case: str) -> None: ...

    def case_log(self, timeout: float | None = None) -> str: ...

    def kexec_unavailable(self, kernel: str) -> str | None:
        """Why this L1 cannot be kexec'd into `kernel`; None if it can."""
        ...

    def kexec(self, kernel: str, timeout: float) -> None: ...

    def reload_kvm_hv(self) -> Result: ...

    def reboot(self, timeout: float) -> None: ...

    def stop(self) -> None: ...


# The line that starts a case's part of an L1's kernel log (`L1Commands.begin_case`).
CASE_MARK = "powernest: case "
_CASE_MARKS = itertools.count(1)
# The kernel log after the line that holds $1 (cut in the L1: only the case's part crosses
# its console), all of it if $1 is empty or no line holds it; printed for `console.intact`.
_CASE_LOG = ("{ [ -n \"$1\" ] && dmesg | awk -v m=\"$1\" 'f { print; next } "
             "index($0, m) { f = 1 } END { exit !f }' || dmesg; } > /tmp/.pn-log; "
             "base64 /tmp/.pn-log; md5sum /tmp/.pn-log")
READ_TRIES = 3   # a kernel message on the console cut into the output: read it again

_STOP_TRACING = ("for t in /sys/kernel/tracing /sys/kernel/debug/tracing; do "
                 '[ -w "$t/events/enable" ] && echo 0 > "$t/events/enable"; done; true')


class L1Commands:
    """What every L1 does alike, through its `run`."""

    kernel_release = ""
    _l2_ids: itertools.count[int]
    _case_mark = ""

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        raise NotImplementedError

    @property
    def kernel(self) -> str:
        return kernel_series(self.kernel_release)

    def kvm_hv_loaded(self) -> bool:
        return self.run(["sh", "-c", "grep -q '^kvm_hv ' /proc/modules"]).ok

    def has_dev_kvm(self) -> bool:
        return self.run(["test", "-c", "/dev/kvm"]).ok

    def dmesg(self) -> str:
        return self.run(["dmesg"], check=True).stdout

    def begin_case(self, case: str) -> None:
        """Mark in the kernel log that `case` begins here: `case_log()` reads from the mark."""
        self._case_mark = f"{CASE_MARK}{next(_CASE_MARKS)} {case}"
        self.run(["sh", "-c", 'echo "<5>$1" > /dev/kmsg', "sh", self._case_mark], check=True)

    def case_log(self, timeout: float | None = None) -> str:
        """The kernel log since the current case began (`begin_case`); all of it when no
        case began here, or when the mark has left the kernel's log buffer."""
        for _ in range(READ_TRIES):
            printed = self.run(["sh", "-c", _CASE_LOG, "sh", self._case_mark], timeout,
                               check=True).stdout
            if (log := intact(printed)) is not None:
                return log
        raise ConsoleError("the kernel log could not be read intact through the console in "
                           f"{READ_TRIES} tries", None)

    def next_l2_role(self) -> str:
        return naming.l2_role(next(self._l2_ids))

    def stop_tracing(self) -> None:
        """Disable every trace event before a kexec: with the hcall tracepoints enabled,
        pseries Linux traces the hcalls of the kexec switchover itself, and `kexec -e`
        hung there on the powervm twin (twice of twice; turning tracing_on off was not
        enough: the events, and the hcall path's static key, must be off)."""
        self.run(["sh", "-c", _STOP_TRACING])


class CheckpointWarning(UserWarning):
    """A saved L1 state could not be used or made; the L1 was booted instead."""


class L1Guest(L1Commands):
    """An L1 booted by QEMU on a host; see the module docstring for its lifecycle."""

    def __init__(self, host: Shell, spec: GuestSpec, log_path: Path,
                 boot_timeout: float, command_timeout: float,
                 expected_release: str | None = None) -> None:
        self.host = host
        self.spec = spec
        self.log_path = log_path
        self.boot_timeout = boot_timeout
        self.command_timeout = command_timeout
        self.expected_release = expected_release
        self.console: Console | None = None
        self.kernel_release = ""
        self.boot_seconds = 0.0
        self.started_from = ""
        self.kvm_load: Result | None = None
        self.kexecs = 0
        self._l2_ids = itertools.count(1)

    @property
    def shell(self) -> ConsoleShell:
        if self.console is None:
            raise RuntimeError(f"{self.spec.name} is not running")
        return self._shell

    @property
    def name(self) -> str:
        return self.spec.name

    def alive(self) -> bool:
        return self.console is not None and self.console.alive()

    def next_l2_name(self) -> str:
        return self.next_l2_role()   # inside this L1, which is already the run's

    def l2_defaults(self) -> dict[str, Any]:
        """The L2 images inside the L1 image, and its QEMU on PATH."""
        return {"kernel": L2_KERNEL, "initrd": L2_INITRD, "data_dir": L2_DATA_DIR}

    def start(self) -> None:
        """Spawn QEMU and wait until the L1 shell answers."""
        started = time.monotonic()
        self._spawn(self.spec)
        try:
            self.wait_ready(self.boot_timeout)
        except ConsoleClosed:
            raise GuestStartError.from_log(self.spec.name, self.log_path) from None
        self.boot_seconds = time.monotonic() - started
        self.started_from = "boot"

    def start_from(self, checkpoint: str) -> None:
        """Restore the L1 from `checkpoint` (a file on its host); boot it, then save
        that file, if there is none yet or it does not load (with a warning)."""
        if self.host.run(["test", "-s", checkpoint]).ok:
            problem = self._try_restore(checkpoint)
            if problem is None:
                return
            warnings.warn(CheckpointWarning(f"{self.name}: checkpoint {checkpoint} not "
                                            f"used ({problem}); booting"), stacklevel=2)
        self.start()
        try:
            written = save_state(self.console, checkpoint, self.boot_timeout,  # type: ignore[arg-type]
                                 self.spec.mapped_ram)
            if written != checkpoint:
                self.host.run(["mv", written, checkpoint], check=True)
        except SaveFailed as exc:
            self.host.run(["rm", "-f", checkpoint, checkpoint + ".part"])
            warnings.warn(CheckpointWarning(str(exc).splitlines()[0]), stacklevel=2)

    def _try_restore(self, checkpoint: str) -> str | None:
        """Restore from `checkpoint` (again if the restore never answered): None once
        restored, else what went wrong, the file dropped."""
        problem = ""
        for attempt in range(1, RESTORE_TRIES + 1):
            try:
                self._restore(checkpoint)
                return None
            except ConsoleClosed as exc:   # QEMU refused the file: no second try
                said = errors(exc.output) or errors(self.console.tail() if self.console else "")
                problem = "QEMU could not load it: " + "; ".join(said)
                self._abandon(checkpoint, problem, drop=True)
                return problem
            except ConsoleError as exc:
                problem = str(exc).splitlines()[0]
                self._abandon(checkpoint, problem, drop=attempt == RESTORE_TRIES)
        return problem

    def _restore(self, checkpoint: str) -> None:
        started = time.monotonic()
        self._spawn(replace(self.spec, incoming=checkpoint))
        assert self.console is not None
        timeout = min(self.boot_timeout, RESTORE_TIMEOUT[self.spec.accel])
        deadline = started + timeout
        wait_running(self.console, timeout, RESTORE_POLL)
        while True:   # the saved L1 waits at its prompt: a line shows it
            self.console.sendline("")
            try:
                self.console.expect(re.escape(L1_PROMPT), RESTORE_POLL)
                break
            except ConsoleTimeout:
                if time.monotonic() > deadline:
                    raise ConsoleTimeout(f"{self.name}: no prompt within {timeout:.0f} s "
                                         f"of the restore", self.log_path) from None
        self.console.sendline("")
        # what must differ between L1s restored from one state: the clock, the RNG pool
        self._take_shell(timeout, f"date -s @{int(time.time())} >/dev/null && "
                                  f"echo {secrets.token_hex(32)} > /dev/urandom")
        self.boot_seconds = time.monotonic() - started
        self.started_from = "checkpoint"

    def _abandon(self, checkpoint: str, problem: str, drop: bool) -> None:
        """Stop a restore that failed and note why in the log; `drop` the file too."""
        if self.console is not None:
            self.console.close()
        if self.spec.pidfile:
            kill_pidfile(self.host, self.spec.pidfile)
        if drop:
            self.host.run(["rm", "-f", checkpoint])
        then = "booting" if drop else RESTORED_AGAIN
        with self.log_path.open("a") as log:
            log.write(f"\n{NOTE}checkpoint {checkpoint} not used ({problem}); {then}\n")

    def _spawn(self, spec: GuestSpec) -> None:
        self.console = Console(self.host.spawn(spec.argv()), self.log_path, spec.name)
        self.console.proc.logfile_read.write(f"# {quote(spec.argv())}\n")
        if spec.pidfile:
            schedstat.start(self.host, spec.pidfile, self._samples)

    @property
    def _samples(self) -> str:
        return f"/tmp/{self.spec.name}.sched"

    def l0_wait(self, seconds: float) -> schedstat.Wait | None:
        """The longest a thread of this L1's QEMU waited for a host CPU in any window of
        the last `seconds` (see `powernest.schedstat`)."""
        return schedstat.worst_wait(schedstat.read(self.host, self._samples, seconds), seconds)

    def wait_ready(self, timeout: float) -> None:
        """Wait for a (re)booted L1 kernel's banner and take over its shell."""
        assert self.console is not None
        self.console.expect(L1_READY, timeout)
        self._take_shell(timeout)

    def _take_shell(self, timeout: float, first: str = "") -> None:
        """Take over the L1's shell and read its kernel release, in one command with the
        shell script `first` if given."""
        assert self.console is not None
        self._shell = ConsoleShell(self.console, self.spec.name, self.command_timeout)
        self._shell.attach(L1_PROMPT, timeout)
        script = f"{first} && uname -r" if first else "uname -r"
        release = self._shell.run_script(script, check=True).stdout
        self.kernel_release = re.findall(r"^(\d+\.\d+\S*)$", release, re.M)[-1]

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        try:
            return self.shell.run(argv, timeout, check)
        except ConsoleClosed as exc:
            raise self._l0_died(exc) from None

    def _l0_died(self, closed: ConsoleClosed) -> L0Died:
        return L0Died(self.spec.name, closed,
                      last_words(self.log_path.read_text(errors="replace")))

    def load_kvm(self) -> Result:
        """insmod kvm.ko (must work), then kvm-hv.ko; returns what kvm-hv's insmod did."""
        self.run(["insmod", self._module("kvm")], check=True)
        self.kvm_load = self.run(["insmod", self._module("kvm-hv")])
        return self.kvm_load

    def _module(self, name: str) -> str:
        """Where the L1 image keeps a module of the running kernel."""
        return f"/lib/modules/{self.kernel_release}/{name}.ko"

    def reload_kvm_hv(self) -> Result:
        """rmmod kvm-hv (a VM whose QEMU was just killed may hold it a moment longer:
        tried for up to 5 s) and insmod it again, without a kexec."""
        self.run(["sh", "-c", 'i=0; until rmmod kvm_hv; do [ "$i" -lt 50 ] && sleep 0.1 '
                  '&& i=$((i + 1)) || exit 1; done'], check=True)
        self.kvm_load = self.run(["insmod", self._module("kvm-hv")])
        return self.kvm_load

    def kexec_unavailable(self, kernel: str) -> str | None:
        # the L1 image holds every lab kernel, a kexec'd L1's initramfs none (see kexec())
        return f"{self.name} was kexec'd: it has no lab kernel" if self.kexecs else None

    def kexec(self, kernel: str, timeout: float) -> None:
        """kexec into /boot/vmlinux-<kernel> with this L1's own files as initramfs.

        The initramfs L0 passed is gone once L1 runs: `mkself` rebuilds one from the
        running root, but for the lab kernels (93 of its 160 MB; a kexec'd L1 is probed
        and reset, it boots no L2 and kexecs no further: 4.5 s a kexec, not 6.2).
        `--mem-min` keeps the new images off the old kernel's low memory (without it
        kexec -e hangs).  `--no-checks`: no SHA-256 of what is loaded, at load and in
        the purgatory (under TCG 2.8 s of each kexec's 8.3).
        """
        self.run(["sh", "-c", 'mkself "$1" /boot/vmlinux-*', "sh", "/tmp/self.cpio"],
                 timeout=timeout, check=True)
        self.stop_tracing()
        self.run(["kexec", "--no-checks", "--mem-min=0x10000000", "-l", f"/boot/vmlinux-{kernel}",
                  "--initrd=/tmp/self.cpio", f"--append={self.spec.append}"],
                 timeout=timeout, check=True)
        self._restart("kexec -e", timeout)
        self.kexecs += 1

    def reboot(self, timeout: float) -> None:
        """`reboot -f`: a machine reset; L0 boots the L1 it was started with again."""
        self._restart("reboot -f", timeout)
        self.kexecs = 0

    def _restart(self, command: str, timeout: float) -> None:
        assert self.console is not None
        self.console.sendline(command)
        try:
            self.wait_ready(timeout)
        except ConsoleClosed as exc:
            raise self._l0_died(exc) from None
        except ConsoleTimeout as exc:
            text = self.console.tail(200)
            after = text.rsplit("Starting new kernel", 1)
            if command.startswith("kexec") and len(after) == 2 and "Linux version" not in after[1]:
                raise ConsoleTimeout(f"{self.spec.name}: kexec hung: the console stopped after "
                                     f"'Starting new kernel' and no kernel started\n{exc}",
                                     exc.log) from None
            raise

    def stop(self) -> None:
        """Kill QEMU and hang up its console, whatever state it is in."""
        if self.console is not None:
            self.console.close()
        if self.spec.pidfile:
            kill_pidfile(self.host, self.spec.pidfile)
            self.host.run(["rm", "-f", self._samples])
