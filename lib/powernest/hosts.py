"""A host in use: its shell, its L0 QEMU version, and the lab images on it.

`HostSession.open()` connects (locally or over SSH), reads the L0 version and
takes the host's lease (see `lease.py`); `path_of()` gives a lab file's path
on that machine, uploading it over SFTP into a cache keyed by its SHA-256 when
the host is remote (a second run uploads nothing); `wait_for_new_boot()`
reconnects to a host that replaced its kernel and takes its lease again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from powernest import lease, naming, qemu
from powernest.inventory import Host, InventoryError, Ssh
from powernest.kinds import L0, HostKind, kind_of
from powernest.lab import find_lab
from powernest.lab.cache import default_cache, file_digest
from powernest.lease import Lease
from powernest.local import LocalShell
from powernest.nested import API, l0_supports, unsupported_reason
from powernest.qemu import StartCheck
from powernest.shell import Shell, ShellError
from powernest.ssh import SshShell

REMOTE_CACHE = ".cache/powernest/images"
CHECKPOINTS = "checkpoints"   # saved L1 states, beside the images' cache
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
    """One inventory host, connected for the run."""

    host: Host
    shell: Shell
    qemu: str
    l0: L0
    run_id: str = ""
    lease_timeout: float = 0.0
    lease: Lease | None = None
    busy: str = ""            # why this run may not use the host (leased by another run)
    took_over: str = ""       # the previous holder of the lease, gone without releasing it
    reaped: list[str] = field(default_factory=list)
    kexecs: int = 0           # kernels this run made the host exec (wait_for_new_boot)
    _staged: dict[Path, str] = field(default_factory=dict, repr=False)
    _checkpoints: str = field(default="", repr=False)
    _cpus: set[str] | None = field(default=None, repr=False)

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
        session = cls(host, shell, binary, kind_of(host).probe(shell, binary), run_id,
                      lease_timeout)
        if leased is not None:
            session.busy, session.took_over = leased["busy"], leased["took_over"]
            session.reaped = list(leased["reaped"])
            return session
        try:
            session.lease = lease.acquire(shell, host.name, run_id, lease_timeout)
        except lease.LeaseBusy as exc:
            session.busy = str(exc)
            return session
        session.took_over = session.lease.took_over
        session.reaped = lease.reap(shell, host.name, run_id)
        return session

    def lease_note(self) -> dict[str, Any]:
        """What taking the lease found, for the workers of the run that holds it."""
        return {"busy": self.busy, "took_over": self.took_over, "reaped": self.reaped}

    @property
    def kind(self) -> HostKind:
        return kind_of(self.host)

    @property
    def qemu_version(self) -> tuple[int, int, int] | None:
        return self.l0.qemu_version

    def has_cpu(self, cpu: str) -> bool:
        """Whether this host's L0 QEMU has the CPU model."""
        if self._cpus is None:
            self._cpus = qemu.cpu_models(self.shell, self.qemu)
        return cpu in self._cpus

    def unavailable(self, api: API | None = None) -> str | None:
        """Why this run may not use the host now (another run holds it), or, given an
        API, why its L0 cannot offer it; None if it can."""
        return self.busy or (self.api_unavailable(api) if api else None)

    def api_unavailable(self, api: API) -> str | None:
        """Why this host's L0 (its QEMU version) cannot offer `api`; None if it can."""
        if self.qemu_version and not l0_supports(api, self.qemu_version):
            return unsupported_reason(api, self.qemu_version)
        return None

    def caps_unavailable(self, cpu: str, caps: frozenset[API]) -> str | None:
        """Why QEMU cannot be asked here to start `cpu` with `caps`; None if it can."""
        reasons = (self.kind.cpu_unavailable(self.host, cpu),
                   *(self.api_unavailable(api) for api in API if api in caps))
        reason = next((r for r in reasons if r), None)
        if reason is None and not self.has_cpu(cpu):
            reason = f"{self.l0.description} has no {cpu} CPU model"
        return reason

    def check_caps(self, cpu: str, caps: frozenset[API], case: str) -> StartCheck:
        """Whether this host's QEMU starts a machine of `cpu` with `caps` on (and the
        host's `l1_machine` properties), stopped, and what it said."""
        spec = qemu.GuestSpec(
            name=naming.guest_name(self.run_id, self.host.name, f"caps-{case}"), kernel="",
            qemu=self.qemu, data_dir=self.host.qemu_data_dir, cpu=cpu,
            accel=self.kind.accel,   # type: ignore[arg-type]
            machine_props=(*(f"{a.cap}=on" for a in API if a in caps), *self.host.l1_machine))
        return qemu.check_start(self.shell, spec)

    def path_of(self, local: Path) -> str:
        """Where a lab file is on this host: uploaded once per content hash if remote."""
        if isinstance(self.shell, LocalShell):
            return str(local)
        if local not in self._staged:
            remote_dir = f"{self._home()}/{REMOTE_CACHE}/{file_digest(local)[:32]}"
            remote = f"{remote_dir}/{local.name}"
            if not self.shell.run(["test", "-f", remote]).ok:
                self.shell.run(["mkdir", "-p", remote_dir], check=True)
                self.shell.put(local, remote + ".part")
                self.shell.run(["mv", remote + ".part", remote], check=True)
            self._staged[local] = remote
        return self._staged[local]

    def checkpoint_path(self, key: str) -> str:
        """Where this host keeps the saved L1 state of configuration `key`."""
        if not self._checkpoints:
            where = (default_cache() if isinstance(self.shell, LocalShell)
                     else Path(self._home(), REMOTE_CACHE).parent) / CHECKPOINTS
            self.shell.run(["mkdir", "-p", str(where)], check=True)
            self._checkpoints = str(where)
        return f"{self._checkpoints}/{key}.state"

    def _home(self) -> str:
        return self.shell.run(["sh", "-c", 'printf "%s" "$HOME"'], check=True).stdout

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
        if self.lease:
            self.lease.release()
        self.lease = lease.acquire(self.shell, self.host.name, self.run_id, self.lease_timeout)
        return waited

    def close(self) -> None:
        if self.lease:
            self.lease.release()
        self.shell.close()
