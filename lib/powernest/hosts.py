"""A host in use: its shell, its L0 QEMU version, and the lab images on it.

`HostSession.open()` connects (locally or over SSH), reads the L0 version and
takes the host's lease (see `lease.py`);
`images()` returns the paths of the boot images on that machine, uploading
them over SFTP into a cache keyed by the lab's content hash when the host is
remote (a second run uploads nothing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from powernest import lease, qemu
from powernest.inventory import Host, InventoryError, Kind, Ssh
from powernest.lab import LabImages, find_lab
from powernest.lease import Lease
from powernest.local import LocalShell
from powernest.shell import Shell
from powernest.ssh import SshShell

REMOTE_CACHE = ".cache/powernest/images"


@dataclass(frozen=True)
class StagedImages:
    """The lab's boot images as paths on the host that boots them."""

    kernels: dict[str, str]
    l1_initrd: str


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class HostSession:
    """One inventory host, connected for the run."""

    host: Host
    shell: Shell
    qemu: str
    qemu_version: tuple[int, int, int] | None = None
    lease: Lease | None = None
    busy: str = ""            # why this run may not use the host (leased by another run)
    reaped: list[str] = field(default_factory=list)
    _staged: StagedImages | None = field(default=None, repr=False)
    _cpus: set[str] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, host: Host, run_id: str, lease_timeout: float) -> HostSession:
        """Connect, take the host's lease (or note who holds it), reap stale guests."""
        shell = shell_for(host)
        binary = resolve_qemu(host)
        version = qemu.version(shell, binary) if host.kind is not Kind.POWERVM else None
        session = cls(host, shell, binary, version)
        try:
            session.lease = lease.acquire(shell, host.name, run_id, lease_timeout)
        except lease.LeaseBusy as exc:
            session.busy = str(exc)
            return session
        session.reaped = lease.reap(shell, host.name, run_id)
        return session

    @property
    def l0(self) -> str:
        """The L0 hypervisor as a report shows it."""
        if self.host.kind is Kind.POWERVM:
            return "PowerVM"
        v = ".".join(map(str, self.qemu_version)) if self.qemu_version else "unknown"
        return f"QEMU {v} ({'TCG' if self.host.kind is Kind.TCG else 'KVM'})"

    def has_cpu(self, cpu: str) -> bool:
        """Whether this host's L0 QEMU has the CPU model."""
        if self._cpus is None:
            self._cpus = qemu.cpu_models(self.shell, self.qemu)
        return cpu in self._cpus

    def images(self, lab: LabImages) -> StagedImages:
        """The lab images' paths on this host, uploaded once per content hash."""
        if self._staged is None:
            if isinstance(self.shell, LocalShell):
                self._staged = StagedImages({k: str(p) for k, p in lab.kernels.items()},
                                            str(lab.l1_initrd))
            else:
                self._staged = self._upload(lab)
        return self._staged

    def _upload(self, lab: LabImages) -> StagedImages:
        files = [*lab.kernels.values(), lab.l1_initrd]
        home = self.shell.run(["sh", "-c", 'printf "%s" "$HOME"'], check=True).stdout
        remote_dir = f"{home}/{REMOTE_CACHE}/{lab.key}"
        self.shell.run(["mkdir", "-p", remote_dir], check=True)
        for path in files:
            remote = f"{remote_dir}/{path.name}"
            have = self.shell.run(["sh", "-c", 'sha256sum "$1" 2>/dev/null', "sh", remote])
            if have.stdout.split()[:1] != [_sha256(path)]:
                self.shell.put(path, remote + ".part")
                self.shell.run(["mv", remote + ".part", remote], check=True)
        return StagedImages({k: f"{remote_dir}/{p.name}" for k, p in lab.kernels.items()},
                            f"{remote_dir}/{lab.l1_initrd.name}")

    def close(self) -> None:
        if self.lease:
            self.lease.release()
        self.shell.close()
