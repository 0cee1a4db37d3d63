"""A host in use for a run: connected, its L0 probed, held.

`HostSession.open()` connects (a `LocalShell` or an `SshShell`), probes the L0
(`kinds`; its QEMU's checks: `l0qemu.L0Qemu`) and takes the host's lease
(`lease.HostHold`); `path_of()` gives a lab file's path on that machine
(`Shell.stage`); `wait_for_new_boot()` reconnects to a host that replaced its
kernel and takes its lease again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from powernest.inventory import Host, InventoryError, Ssh
from powernest.kinds import L0, HostKind, kind_of
from powernest.l0qemu import L0Qemu
from powernest.lab import find_lab
from powernest.lease import HostHold
from powernest.local import LocalShell
from powernest.nested import API
from powernest.shell import Shell, ShellError
from powernest.ssh import SshShell

CHECKPOINTS = "checkpoints"   # saved L1 states, in the host's cache
BOOT_ID = "/proc/sys/kernel/random/boot_id"
RECONNECT_INTERVAL = 2.0


class HostLost(ShellError):
    """A host did not come back after replacing its kernel."""


def shell_for(host: Host) -> Shell:
    """A LocalShell for a local emulated lab, an SshShell otherwise."""
    if host.ssh is None:
        return LocalShell(host.name)
    return _ssh_shell(host.name, host.ssh)


def _ssh_shell(name: str, s: Ssh) -> SshShell:
    """An SshShell for an inventory `ssh` section, through its `via` jump hosts."""
    gateway = _ssh_shell(f"{name} (jump host {s.via.host})", s.via) if s.via else None
    return SshShell(name, s.host, port=s.port, user=s.user, key_file=s.key_file,
                    password_env=s.password_env, known_hosts=s.known_hosts,
                    verify_host_key=s.verify_host_key, connect_timeout=s.connect_timeout,
                    keepalive=s.keepalive, gateway=gateway)


def resolve_qemu(host: Host) -> str:
    """The host's QEMU binary; `lab:NAME` is a file of the local lab build."""
    if not host.qemu.startswith("lab:"):
        return host.qemu
    if host.ssh is not None:
        raise InventoryError(f"host {host.name}: qemu {host.qemu!r} is a lab file, "
                             "which only a local host can use")
    lab = find_lab()
    path = lab.root / host.qemu.removeprefix("lab:") if lab else None
    if path is None or not path.is_file():
        raise InventoryError(f"host {host.name}: no {host.qemu!r} in the lab build "
                             "(run `powernest lab build`)")
    return str(path)


@dataclass
class HostSession:
    """One inventory host, connected for the run: its shell, its L0 (as probed, and its
    QEMU's checks), this run's hold on it, and the kernels the run made it exec."""

    host: Host
    shell: Shell
    l0_qemu: L0Qemu
    hold: HostHold
    kexecs: int = 0           # kernels this run made the host exec (wait_for_new_boot)
    _checkpoints: str = field(default="", repr=False)

    @classmethod
    def open(cls, host: Host, run_id: str, lease_timeout: float,
             leased: dict[str, Any] | None = None) -> HostSession:
        """Connect, probe the L0, take the host's lease (or note who holds it), reap
        stale guests.  `leased`: the run's controller did that for this worker, and
        this is its `lease_note()` (or why it could not open the host)."""
        if leased is not None and "error" in leased:
            raise ShellError(f"{host.name}: {leased['error']}")
        shell = shell_for(host)
        binary = resolve_qemu(host)
        l0_qemu = L0Qemu(host, shell, binary, kind_of(host).probe(shell, binary), run_id)
        if leased is not None:
            return cls(host, shell, l0_qemu, HostHold.noted(host.name, run_id, lease_timeout,
                                                            leased))
        session = cls(host, shell, l0_qemu, HostHold(host.name, run_id, lease_timeout))
        session.hold.take(shell)
        return session

    def lease_note(self) -> dict[str, Any]:
        """What taking the lease found, for the workers of the run that holds it."""
        return self.hold.note()

    @property
    def kind(self) -> HostKind:
        return kind_of(self.host)

    @property
    def qemu(self) -> str:
        """The L0 QEMU binary on the host."""
        return self.l0_qemu.binary

    @property
    def l0(self) -> L0:
        return self.l0_qemu.l0

    @property
    def run_id(self) -> str:
        return self.hold.run_id

    @property
    def qemu_version(self) -> tuple[int, int, int] | None:
        return self.l0.qemu_version

    def unavailable(self, api: API | None = None) -> str | None:
        """Why this run may not use the host now (another run holds it), or, given an
        API, why its L0 cannot offer it; None if it can."""
        return self.hold.busy or (self.l0_qemu.api_unavailable(api) if api else None)

    def path_of(self, local: Path) -> str:
        """Where a lab file is on this host (`Shell.stage`)."""
        return self.shell.stage(local)

    def checkpoint_path(self, key: str) -> str:
        """Where this host keeps the saved L1 state of configuration `key`."""
        if not self._checkpoints:
            self._checkpoints = f"{self.shell.cache_dir()}/{CHECKPOINTS}"
            self.shell.run(["mkdir", "-p", self._checkpoints], check=True)
        return f"{self._checkpoints}/{key}.state"

    def boot_id(self) -> str:
        return self.shell.run(["cat", BOOT_ID], timeout=30, check=True).stdout.strip()

    def wait_for_new_boot(self, old_boot_id: str, timeout: float) -> float:
        """Reconnect until the host runs a kernel other than `old_boot_id`'s; retake
        the lease (its holder died with the old kernel).  Returns the seconds waited."""
        self.shell.close()
        started = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - started < timeout:
            try:
                if self.boot_id() != old_boot_id:
                    break
                last = "it still runs the old kernel"
                self.shell.close()
            except ShellError as exc:   # refused, timed out, dropped mid-command
                last = str(exc)
            time.sleep(RECONNECT_INTERVAL)
        else:
            raise HostLost(f"{self.host.name} did not come back with a new kernel within "
                           f"{timeout:.0f} s; last attempt: {last}")
        waited = time.monotonic() - started
        self.kexecs += 1
        self.hold.retake(self.shell)
        return waited

    def close(self) -> None:
        self.hold.release()
        self.shell.close()
