"""L1 and L2 guests: boot, wait, run commands, and always clean up.

L1 lifecycle: `start()` spawns QEMU on the host (L0) with the console on a
pty, waits for the L1 init's banner and prompt, and from then on the L1 is
driven through `shell` (a `ConsoleShell`).  `stop()` kills QEMU whatever
state the guest is in and is safe to call twice.

L2 lifecycle: `start()` runs the L1's QEMU with `-accel kvm -daemonize`; the
L1 is an `L2Host`: an `L1Guest`, or a PowerVM LPAR (`powernest.lpar.Lpar`).  The
L2 console is a FIFO pair inside the L1 whose output a `cat` in the L1 appends
to a file.  The controller polls that file (base64, so the L2's own crash text
cannot be mistaken for the L1's) and mirrors it to the local console log;
commands reach the L2 shell through the input FIFO.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from powernest.console import (
    Console,
    ConsoleClosed,
    ConsoleError,
    ConsoleShell,
    ConsoleTimeout,
    GuestCrash,
    begin_marker,
    end_marker,
    find_failure,
    tail,
)
from powernest.qemu import GuestSpec, errors
from powernest.shell import CommandFailed, CommandTimeout, Result, Runner, Shell, quote

L1_READY = r"POWERNEST-L1-READY kernel=\S+ uptime="
L1_PROMPT = "powernest-l1# "
L2_READY = r"POWERNEST-L2-READY kernel=(\S+) uptime="
L2_CPUINFO_END = "POWERNEST-L2-CPUINFO-END"
L2_DATA_DIR = "/usr/share/qemu"
L2_KERNEL = "/boot/vmlinux-6.12"
L2_INITRD = "/boot/l2.cpio.gz"
POLL_INTERVAL = 0.5
_B64 = re.compile(r"[A-Za-z0-9+/]+=*")
_MD5 = re.compile(r"^[0-9a-f]{32}  ")


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


def kernel_series(release: str) -> str:
    """'6.12' for '6.12.95+deb12-powerpc64le'."""
    return ".".join(release.split(".")[:2])


class L2Host(Runner, Protocol):
    """What an L2 runs in: the commands it needs and where its images are."""

    @property
    def name(self) -> str: ...

    def alive(self) -> bool: ...

    def next_l2_name(self) -> str: ...

    def l2_defaults(self) -> dict[str, Any]:
        """GuestSpec fields for an L2 here: kernel, initrd, data_dir, qemu."""
        ...


class L1Guest:
    """An L1 booted by QEMU on a host; see the module docstring for its lifecycle."""

    def __init__(self, host: Shell, spec: GuestSpec, log_path: Path,
                 boot_timeout: float, command_timeout: float) -> None:
        self.host = host
        self.spec = spec
        self.log_path = log_path
        self.boot_timeout = boot_timeout
        self.command_timeout = command_timeout
        self.console: Console | None = None
        self.kernel_release = ""
        self.boot_seconds = 0.0
        self.kvm_load: Result | None = None   # what the last insmod of kvm-hv did
        self._l2_ids = itertools.count(1)

    @property
    def shell(self) -> ConsoleShell:
        if self.console is None:
            raise RuntimeError(f"{self.spec.name} is not running")
        return self._shell

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kernel(self) -> str:
        return kernel_series(self.kernel_release)

    def alive(self) -> bool:
        return self.console is not None and self.console.alive()

    def l2_defaults(self) -> dict[str, Any]:
        """The L2 images inside the L1 image, and its QEMU on PATH."""
        return {"kernel": L2_KERNEL, "initrd": L2_INITRD, "data_dir": L2_DATA_DIR}

    def start(self) -> None:
        """Spawn QEMU and wait until the L1 shell answers."""
        started = time.monotonic()
        self.console = Console(self.host.spawn(self.spec.argv()), self.log_path, self.spec.name)
        try:
            self.console.proc.logfile_read.write(f"# {quote(self.spec.argv())}\n")
            self.wait_ready(self.boot_timeout)
        except ConsoleClosed:
            raise GuestStartError.from_log(self.spec.name, self.log_path) from None
        self.boot_seconds = time.monotonic() - started

    def wait_ready(self, timeout: float) -> None:
        """Wait for a (re)booted L1 kernel's banner and take over its shell."""
        assert self.console is not None
        self.console.expect(L1_READY, timeout)
        self._shell = ConsoleShell(self.console, self.spec.name, self.command_timeout)
        self._shell.attach(L1_PROMPT, timeout)
        release = self._shell.run(["uname", "-r"], check=True).stdout
        self.kernel_release = re.findall(r"^(\d+\.\d+\S*)$", release, re.M)[-1]

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        return self.shell.run(argv, timeout, check)

    def load_kvm(self) -> Result:
        """insmod kvm.ko (must work), then kvm-hv.ko; returns what kvm-hv's insmod did."""
        self.run(["insmod", self._module("kvm")], check=True)
        self.kvm_load = self.run(["insmod", self._module("kvm-hv")])
        return self.kvm_load

    def _module(self, name: str) -> str:
        """Where the L1 image keeps a module of the running kernel."""
        return f"/lib/modules/{self.kernel_release}/{name}.ko"

    def kvm_hv_loaded(self) -> bool:
        return self.run(["sh", "-c", "grep -q '^kvm_hv ' /proc/modules"]).ok

    def dmesg(self) -> str:
        return self.run(["dmesg"], check=True).stdout

    def reload_kvm_hv(self) -> Result:
        """rmmod kvm-hv and insmod it again, without a kexec."""
        self.run(["rmmod", "kvm_hv"], check=True)
        return self.run(["insmod", self._module("kvm-hv")])

    def kexec(self, kernel: str, timeout: float) -> None:
        """kexec into /boot/vmlinux-<kernel> with this L1's own files as initramfs.

        The initramfs L0 passed is gone once L1 runs, so `mkself` rebuilds one
        from the running root.  `--mem-min` keeps the new images away from the
        old kernel's low memory (see LAB-NOTES: without it kexec -e hangs).
        """
        self.run(["mkself", "/tmp/self.cpio"], timeout=timeout, check=True)
        self.run(["kexec", "--mem-min=0x10000000", "-l", f"/boot/vmlinux-{kernel}",
                  "--initrd=/tmp/self.cpio", f"--append={self.spec.append}"],
                 timeout=timeout, check=True)
        self._restart("kexec -e", timeout)

    def reboot(self, timeout: float) -> None:
        """`reboot -f`: a machine reset; L0 boots the L1 it was started with again."""
        self._restart("reboot -f", timeout)

    def _restart(self, command: str, timeout: float) -> None:
        assert self.console is not None
        self.console.sendline(command)
        try:
            self.wait_ready(timeout)
        except ConsoleTimeout as exc:
            text = self.console.tail(200)
            after = text.rsplit("Starting new kernel", 1)
            if command.startswith("kexec") and len(after) == 2 and "Linux version" not in after[1]:
                raise ConsoleTimeout(f"{self.spec.name}: kexec hung: the console stopped after "
                                     f"'Starting new kernel' and no kernel started\n{exc}",
                                     exc.log) from None
            raise

    def next_l2_name(self) -> str:
        return f"l2-{next(self._l2_ids)}"

    def stop(self) -> None:
        """Kill QEMU and hang up its console, whatever state it is in."""
        if self.console is not None:
            self.console.close()
        if self.spec.pidfile:
            kill_pidfile(self.host, self.spec.pidfile)


def kill_pidfile(runner: Runner, pidfile: str) -> None:
    """SIGKILL the process a pidfile names, if it is still there."""
    script = 'test -s "$1" && kill -9 "$(cat "$1")" 2>/dev/null; rm -f "$1"; true'
    with contextlib.suppress(Exception):  # teardown must not mask the test's own error
        runner.run(["sh", "-c", script, "sh", pidfile], timeout=30)


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
        self._ids = itertools.count(1)

    @classmethod
    def in_l1(cls, l1: L2Host, log_dir: Path, boot_timeout: float,
              machine: Sequence[str] = (), **spec: Any) -> L2Guest:
        """An L2 spec with the L1's defaults and `machine` properties, overridden by `spec`."""
        name = l1.next_l2_name()
        base = GuestSpec(name=name, accel="kvm", cpu="host", memory="512M",
                         machine_props=("cap-hpt-max-page-size=4k", *machine),
                         console_pipe=f"/tmp/{name}", pidfile=f"/tmp/{name}.pid",
                         daemonize=True, **l1.l2_defaults())
        return cls(l1, replace(base, **spec), log_dir / f"{l1.name}-{name}.log", boot_timeout)

    def launch(self) -> Result:
        """Start QEMU in the L1; returns its result (non-zero: QEMU refused)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text(f"# in {self.l1.name}: {quote(self.spec.argv())}\n")
        script = ('rm -f "$1.in" "$1.out" "$1.log"; mkfifo "$1.in" "$1.out" && '
                  '{ cat "$1.out" > "$1.log" 2>/dev/null & }')
        self.l1.run(["sh", "-c", script, "sh", self.fifo], check=True)
        result = self.l1.run(self.spec.argv(), timeout=self.boot_timeout)
        with self.log_path.open("a") as log:
            log.write(result.stdout + result.stderr)   # stderr is apart over SSH
        return result

    def start(self) -> None:
        """Launch and wait for the L2's banner; GuestStartError if QEMU refused."""
        started = time.monotonic()
        result = self.launch()
        if not result.ok:
            said = result.stdout + result.stderr
            raise GuestStartError(self.spec.name, errors(said), said, self.log_path)
        match = self.wait_for(L2_READY, self.boot_timeout)
        self.kernel_release = match[1]
        self.boot_seconds = time.monotonic() - started
        self.wait_for(L2_CPUINFO_END, self.boot_timeout)

    def poll(self) -> str:
        """Fetch what the L2 console printed since the last poll; fail on a crash."""
        new = self._fetch(len(self.text.encode()))
        if new:
            with self.log_path.open("a") as log:
                log.write(new)
            self.text += new
            failure = find_failure(self.text)
            if failure:
                kind, at = failure
                raise GuestCrash(self.spec.name, kind, tail(self.text[at:], 60), self.log_path)
        return new

    def _fetch(self, offset: int, tries: int = 3) -> str:
        """The L2 log from byte `offset` on, checked by md5.

        The bytes cross the L1's console, where the L1 kernel may print at any
        moment (under v2 it does at each L2 vCPU start); a chunk whose digest
        does not match is fetched again.
        """
        script = ('tail -c +"$1" "$2" 2>/dev/null | head -c 262144 > /tmp/.pn-chunk; '
                  'base64 /tmp/.pn-chunk; md5sum /tmp/.pn-chunk')
        for _ in range(tries):
            result = self.l1.run(["sh", "-c", script, "sh", str(offset + 1),
                                  f"{self.fifo}.log"])
            lines = result.stdout.split("\n")
            digest = next((line.split()[0] for line in lines if _MD5.match(line)), "")
            try:
                data = base64.b64decode("".join(line for line in lines if _B64.fullmatch(line)))
            except binascii.Error:  # a line was lost to a kernel message: fetch again
                continue
            if hashlib.md5(data).hexdigest() == digest:  # noqa: S324 - integrity, not security
                return data.decode("utf-8", "replace")
        raise ConsoleError(f"{self.spec.name}: the L2 console log could not be read intact "
                           f"through {self.l1.name}'s console in {tries} tries",
                           self.log_path)

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """Poll the L2 console until `pattern` shows after offset `since`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            match = regex.search(self.text, since)
            if match:
                return match
            if time.monotonic() > deadline:
                raise ConsoleTimeout(
                    f"{self.spec.name}: no {pattern!r} within {timeout:.0f} s; last console "
                    f"lines:\n{tail(self.text)}", self.log_path)
            if not self.running():
                self.poll()
                raise ConsoleClosed(f"{self.spec.name}: QEMU exited while waiting for "
                                    f"{pattern!r}; last lines:\n{tail(self.text)}", self.log_path)
            time.sleep(POLL_INTERVAL)

    def send(self, line: str) -> None:
        """Type a line on the L2 console."""
        self.l1.run(["sh", "-c", 'printf "%s\\n" "$1" > "$2.in"', "sh", line, self.fifo],
                    check=True)

    def run(self, argv: Sequence[str], timeout: float = 120.0, check: bool = False) -> Result:
        """Run a command at the L2 shell, framed like `ConsoleShell` does."""
        n = next(self._ids)
        command = quote(argv)
        since = len(self.text)
        self.send(f"echo __L2_{n}B__; {command}; echo __L2_{n}RC=$?")
        begin = self.wait_for(begin_marker(f"__L2_{n}B__"), timeout, since)
        end = self.wait_for(end_marker(f"__L2_{n}RC="), timeout, begin.end())
        output = self.text[begin.end():end.start()].replace("\r", "").strip("\n")
        result = Result(command, int(end[1]), output + "\n" if output else "")
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def cpuinfo(self) -> str:
        """The cpuinfo lines the L2 init printed at boot."""
        start = re.search(L2_READY, self.text)
        end = self.text.find(L2_CPUINFO_END)
        if not start or end < 0:
            return ""
        lines = self.text[start.end():end].replace("\r", "").splitlines()[1:]
        return "\n".join(lines)

    def hardware_name(self) -> str:
        """The L2 kernel's `Hardware name:` boot line, as its console printed it.

        `hv:linux,kvm` there means a KVM hypervisor: Linux
        (arch/powerpc/platforms/pseries/setup.c) prints `hv:<compatible>` from the
        device tree's /hypervisor node, which QEMU adds only under KVM.
        """
        match = re.search(r"Hardware name: [^\r\n]*", self.text)
        return match[0] if match else ""

    def running(self) -> bool:
        script = 'test -s "$1" && kill -0 "$(cat "$1")" 2>/dev/null'
        return self.l1.run(["sh", "-c", script, "sh", self.spec.pidfile or ""]).ok

    def stop(self) -> None:
        """Kill the L2's QEMU and keep the last of its console."""
        if not self.l1.alive():
            return
        with contextlib.suppress(ConsoleError):
            self.poll()
        if self.spec.pidfile:
            kill_pidfile(self.l1, self.spec.pidfile)
        # The L1 kernel destroys the VM once QEMU is gone; wait for that.
        script = 'for i in $(seq 50); do pgrep -f "$1" >/dev/null || exit 0; sleep 0.2; done'
        with contextlib.suppress(ConsoleError, CommandTimeout):
            self.l1.run(["sh", "-c", script, "sh", f"-name {self.spec.name} "], timeout=30)
