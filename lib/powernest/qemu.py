"""QEMU guest specs as argv, and QEMU's own startup messages read back."""

from __future__ import annotations

import hashlib
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from powernest.console import Console, ConsoleError, ConsoleTimeout, tail
from powernest.shell import Result, Shell

_PREFIX = re.compile(r"^(?:\S*/)?qemu-system-[\w.-]+: ")
_VERSION = re.compile(r"QEMU emulator version (\d+)\.(\d+)\.(\d+)")
# Kernel arguments of every lab kernel's boot (L1s, L2s, twins): boot work that is no part
# of what the suites test, left out.  The crypto API's self-tests and the jitter-entropy
# RNG's start-up test took 0.8 s of an L1 boot (4.3 s) and 0.9 s of an L2's (7.4 s) under
# TCG (measured; guest PC samples put them second after ftrace's boot-time patching).
LAB_KERNEL_ARGS = "cryptomgr.notests initcall_blacklist=jent_mod_init"
# H_RANDOM for a pseries guest, whose kernel seeds its RNG from it as it boots: a kernel
# kexec'd in an L1 gets no seed from QEMU, and its first KVM guest waited 1.1 s under TCG
# for the kernel to gather entropy.
SPAPR_RNG = ("-object", "rng-random,id=pn-rng,filename=/dev/urandom",
             "-device", "spapr-rng,rng=pn-rng")


@dataclass(frozen=True)
class GuestSpec:
    """Everything QEMU needs to start one guest (a pseries one unless `board` says)."""

    name: str
    kernel: str
    initrd: str | None = None
    append: str = f"console=hvc0 {LAB_KERNEL_ARGS}"
    machine_props: Sequence[str] = ()
    accel: Literal["tcg", "kvm"] = "tcg"
    cpu: str = "power9"
    smp: int = 1
    memory: str = "4G"
    firmware: Literal["vof", "slof"] = "vof"   # for pseries; powernv boots skiboot
    board: str = "pseries"
    qemu: str = "qemu-system-ppc64"
    data_dir: str | None = None
    pidfile: str | None = None
    console_pipe: str | None = None
    daemonize: bool = False
    incoming: str | None = None   # a saved state to start from instead of booting
    mapped_ram: bool = False      # states saved and loaded in QEMU's mapped-ram format
    extra: Sequence[str] = field(default_factory=tuple)

    @property
    def machine(self) -> str:
        props = [self.board]
        if self.board == "pseries" and self.firmware == "vof":
            props.append("x-vof=on")
        props.extend(self.machine_props)
        return ",".join(props)

    def argv(self) -> list[str]:
        """The command line; the console is stdio unless `console_pipe` names a FIFO pair."""
        argv = [self.qemu, "-name", self.name, "-accel", self.accel, "-M", self.machine,
                "-cpu", self.cpu, "-m", self.memory, "-smp", str(self.smp), "-vga", "none"]
        if self.console_pipe:
            argv += ["-display", "none", "-monitor", "none",
                     "-chardev", f"pipe,id=con0,path={self.console_pipe}",
                     "-serial", "chardev:con0"]
        else:
            argv += ["-nographic"]
        if self.data_dir:
            argv += ["-L", self.data_dir]
        if self.pidfile:
            argv += ["-pidfile", self.pidfile]
        if self.daemonize:
            argv += ["-daemonize"]
        argv += ["-kernel", self.kernel]
        if self.initrd:
            argv += ["-initrd", self.initrd]
        argv += ["-append", self.append, *self.extra]
        if self.mapped_ram:
            argv += ["-global", "migration.mapped-ram=on"]
        if self.incoming:
            argv += ["-incoming", (f"file:{self.incoming}" if self.mapped_ram
                                   else f"exec:cat {shlex.quote(self.incoming)}")]
        return argv


def checkpoint_key(spec: GuestSpec, *context: str) -> str:
    """What makes the saved states of two guests interchangeable, as a digest: the
    command line without the guest's own name and pidfile, and `context` (the QEMU
    version, the images' key)."""
    argv = replace(spec, name="", pidfile=None, incoming=None).argv()
    return hashlib.sha256("\0".join([*argv, *context, SAVED_STOPPED]).encode()).hexdigest()[:32]


SAVED_STOPPED = "saved stopped"   # in the key: states saved live before are not reused
_MONITOR = r"\(qemu\) "
_STATUS = r"VM status: (\w+)"
_MIGRATION = re.compile(r"^\s*(?:Migration status|Status):\s*(\w+)", re.M | re.I)


class SaveFailed(ConsoleError):
    """QEMU could not save a guest's state."""


def save_state(console: Console, path: str, timeout: float, mapped_ram: bool = False) -> str:
    """Save a running guest's state on its host, then let it run on; the file written:
    `path` itself, or with `mapped_ram` (`GuestSpec.mapped_ram`) `path.part`, for the
    caller to rename once the call returns.

    Works through QEMU's monitor, which `-nographic` multiplexes on the console
    (Ctrl-A c switches between them).  QEMU writes the stream into a pipe to
    `cat` (`exec:`, known to QEMU 7.2 and 10), and the file gets its name only
    once it is whole; a mapped-ram state (QEMU 9.0 and later) is written to a
    file directly (`file:`): each RAM page at its own offset, zero pages left as
    holes, which QEMU loads in half the time.  The guest is stopped meanwhile:
    saved live, a KVM guest on the kvm twin came back with a corrupt page allocator
    (list_del corruption, an oops, two restores of three), its pages dirtied during
    the copy lost.  On `SaveFailed` the caller removes the file: `cat` also ends
    when QEMU gives up.
    """
    part = path + ".part"
    target = (f"file:{part}" if mapped_ram else
              f"exec:cat > {shlex.quote(part)} && mv {shlex.quote(part)} {shlex.quote(path)}")
    console.send("\x01c")
    console.expect(_MONITOR, 30)
    console.sendline("stop")   # a stopped guest dirties no page while it is written
    console.expect(_MONITOR, 30)
    # QEMU limits a migration to 128 MiB/s unless told: a save took 4.1 s, now 1.1 s
    console.sendline("migrate_set_parameter max-bandwidth 100G")
    console.expect(_MONITOR, 30)
    console.sendline(f'migrate "{target}"')
    console.expect(_MONITOR, timeout)
    status, deadline = "", time.monotonic() + timeout
    while status not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.1)
        console.sendline("info migrate")
        console.expect(_MONITOR, timeout)
        found = _MIGRATION.findall(str(console.proc.before))
        status = found[-1].lower() if found else ""
    console.sendline("cont")
    console.expect(_MONITOR, 30)
    console.send("\x01c")
    if status != "completed":
        raise SaveFailed(f"{console.guest}: QEMU could not save its state "
                         f"({status or f'not done within {timeout:.0f} s'}); "
                         f"last lines:\n{console.tail()}", console.log_path)
    return part if mapped_ram else path


def wait_running(console: Console, timeout: float, poll: float) -> None:
    """Wait until a guest started with `-incoming` runs: its state loaded.

    Asks QEMU's monitor (`info status`), not the guest: a line sent to the guest's
    console while QEMU 7.2 loads its state can leave that console deaf for good
    (measured: 5 restores of 100 never answered; none of 100 given no input until
    loaded): what was sent is never read, and QEMU leaves its stdin out of its main
    loop's poll, so neither the guest nor the monitor's Ctrl-A gets another byte.
    """
    deadline = time.monotonic() + timeout
    console.send("\x01c")
    console.expect(_MONITOR, timeout)
    while True:
        console.sendline("info status")
        status = console.expect(_STATUS, max(0.0, deadline - time.monotonic()))[1]
        console.expect(_MONITOR, max(0.0, deadline - time.monotonic()))
        if status == "running":
            break
        if time.monotonic() > deadline:
            raise ConsoleTimeout(f"{console.guest}: not running {timeout:.0f} s after its "
                                 f"start (VM status: {status})", console.log_path)
        time.sleep(poll)
    console.send("\x01c")


def errors(output: str) -> list[str]:
    """QEMU's error messages in `output`, warnings left out, hint lines kept.

    A message is a `qemu-system-ppc64: ...` line; lines that follow it without
    the prefix (QEMU's hints) are joined to it with a newline.
    """
    found: list[str] = []
    for line in output.replace("\r", "").splitlines():
        if _PREFIX.match(line):
            message = _PREFIX.sub("", line)
            if not message.startswith("warning:"):
                found.append(message)
        elif found and line.strip() and not found[-1].startswith("warning:"):
            found[-1] += "\n" + line.strip()
    return found


class GuestStartError(ConsoleError):
    """QEMU refused to start the guest; `errors` holds its messages."""

    def __init__(self, guest: str, qemu_errors: list[str], output: str,
                 log: Path | None) -> None:
        self.errors = qemu_errors
        detail = "\n".join(qemu_errors) or tail(output)
        super().__init__(f"{guest}: QEMU did not start:\n{detail}", log)

    @classmethod
    def from_log(cls, guest: str, log: Path) -> GuestStartError:
        """The error for a QEMU whose console closed before the guest came up."""
        text = log.read_text(errors="replace")
        return cls(guest, errors(text), text, log)


def version(shell: Shell, qemu: str) -> tuple[int, int, int] | None:
    """The QEMU version on a machine, or None if that binary does not run."""
    result = shell.run([qemu, "--version"], timeout=30)
    match = _VERSION.search(result.stdout)
    if not result.ok or not match:
        return None
    return (int(match[1]), int(match[2]), int(match[3]))


def cpu_models(shell: Shell, qemu: str) -> set[str]:
    """The CPU model names a QEMU knows (`-cpu help`), lower case."""
    result = shell.run([qemu, "-cpu", "help"], timeout=30)
    lines = r"^\s*(?:PowerPC\s+)?(power\w+)"   # QEMU 10: "  power9 ...", 7.2: "PowerPC power9 ..."
    return {m.lower() for m in re.findall(lines, result.stdout, re.M | re.I)}


@dataclass(frozen=True)
class StartCheck:
    """Whether QEMU accepted a machine configuration, and what it said if not."""

    accepted: bool
    errors: list[str]
    result: Result


def check_start(shell: Shell, spec: GuestSpec, timeout: float = 60) -> StartCheck:
    """Create the machine stopped (`-S -daemonize`), then stop it again.

    QEMU's parent process exits 0 only once the machine is built, so this
    answers "does QEMU accept this configuration" without booting anything.
    """
    pidfile = f"/tmp/powernest-check-{spec.name}.pid"
    argv = [spec.qemu, "-accel", spec.accel, "-M", spec.machine, "-cpu", spec.cpu,
            "-m", "1G", "-S", "-daemonize", "-pidfile", pidfile, "-display", "none",
            "-vga", "none", "-monitor", "none", "-serial", "none", "-name", spec.name]
    if spec.data_dir:
        argv += ["-L", spec.data_dir]
    result = shell.run(argv, timeout=timeout)
    if result.ok:
        shell.run(["sh", "-c", 'kill "$(cat "$1")"; rm -f "$1"', "sh", pidfile], timeout=30)
    return StartCheck(result.ok, errors(result.stderr + result.stdout), result)
