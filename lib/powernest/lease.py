"""Host leases: one run drives a host at a time; guests of dead runs are reaped.

A lease is an `flock` on `/tmp/powernest-lease-<host>.lock` on the host
itself, held by a `flock ... cat` process started on a pseudo-terminal of the
controller's own session: when the controller dies (or its SSH connection
drops) the terminal hangs up, the holder dies and the lock is free again, so
a stale lease is taken over by the next run without anyone cleaning up.  A
record beside the lock (`.json`: owner, run id, start time) says who holds it.

Holding the lease also proves that no other live run uses the host, so every
QEMU there named `pn.<other run>.<host>...` is left over by a run that is gone
and is killed (`reap`).  `HostHold` is a run's hold on one host: its lease, or
why it has none, and what taking it found.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pexpect
from pexpect.spawnbase import SpawnBase

from powernest import naming
from powernest.errors import PowernestError
from powernest.shell import Shell, ShellError

LEASED = "POWERNEST-LEASED"


def lock_path(host: str) -> str:
    return f"/tmp/powernest-lease-{host}.lock"


def record_path(host: str) -> str:
    return f"/tmp/powernest-lease-{host}.json"


@dataclass
class Lease:
    """A held lease; `release()` (or the controller's death) frees it."""

    host: str
    holder: SpawnBase
    took_over: str   # the record of a previous holder that is gone, if any
    shell: Shell

    def release(self) -> None:
        """Remove the record while still holding the lock, then let the lock go.

        A killed controller never gets here: its record stays, and the next run
        reports taking the lease over from it.
        """
        with contextlib.suppress(ShellError):   # a host gone (kexec'd) has nothing left
            self.shell.run(["rm", "-f", record_path(self.host)], timeout=30)
        try:
            self.holder.terminate(force=True)
            self.holder.close()
        except (OSError, pexpect.ExceptionPexpect):
            pass


class LeaseBusy(PowernestError):
    """Another live run holds the host; the message names it."""


def acquire(shell: Shell, host: str, run_id: str, timeout: float) -> Lease:
    """Take the host's lease, waiting up to `timeout` seconds; LeaseBusy if it stays held."""
    previous = _record(shell, host)
    holder = shell.spawn(["flock", "-x", "-w", f"{max(timeout, 0.1):g}", lock_path(host),
                          "sh", "-c", f"echo {LEASED}; exec cat"])
    try:
        holder.expect(LEASED, timeout=timeout + 30)
    except (pexpect.TIMEOUT, pexpect.EOF):
        said = str(holder.before or "").strip()   # `flock -w` says nothing when it times out
        holder.close()
        if said:
            raise ShellError(f"{host}: cannot take the lease with flock "
                             f"(util-linux's flock is needed): {said[-300:]}") from None
        current = _record(shell, host) or {}
        raise LeaseBusy(f"host leased by {current.get('owner', 'another run')} since "
                        f"{current.get('started', 'an unknown time')} "
                        f"(run {current.get('run_id', '?')}); waited {timeout:g} s") from None
    record = {"owner": f"{getpass.getuser()}@{socket.gethostname()}", "run_id": run_id,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    shell.run(["sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", json.dumps(record),
               record_path(host)], timeout=30, check=True)
    took_over = ""
    if previous and previous.get("run_id") != run_id:
        took_over = f"{previous.get('owner')} (run {previous.get('run_id')})"
    return Lease(host, holder, took_over, shell)


def _record(shell: Shell, host: str) -> dict[str, str] | None:
    result = shell.run(["cat", record_path(host)], timeout=30)
    try:
        return json.loads(result.stdout) if result.ok else None
    except json.JSONDecodeError:
        return None


def reap(shell: Shell, host: str, run_id: str) -> list[str]:
    """Kill this host's guests left by other runs; return their QEMU names."""
    listing = shell.run(["sh", "-c", "pgrep -a qemu-system || true"], timeout=30).stdout
    guest = naming.host_guests(host)
    stale = []
    for line in listing.splitlines():
        pid, _, command = line.partition(" ")
        match = guest.match(command.partition("-name ")[2])
        if match and match[1] != run_id:
            stale.append((pid, match[0]))
    for pid, _ in stale:
        shell.run(["kill", "-9", pid], timeout=30)
    return [name for _, name in stale]


@dataclass
class HostHold:
    """A run's hold on one host: its lease, or why it has none (another run holds the
    host), and what taking it found (a holder gone without releasing, stale guests)."""

    host: str
    run_id: str
    timeout: float
    lease: Lease | None = None
    busy: str = ""
    took_over: str = ""
    reaped: list[str] = field(default_factory=list)

    def take(self, shell: Shell) -> None:
        """Take the lease, waiting up to `timeout`, and reap the guests runs that are gone
        left on the host; if another live run holds it, say so in `busy`."""
        try:
            self.lease = acquire(shell, self.host, self.run_id, self.timeout)
        except LeaseBusy as exc:
            self.busy = str(exc)
            return
        self.took_over = self.lease.took_over
        self.reaped = reap(shell, self.host, self.run_id)

    def retake(self, shell: Shell) -> None:
        """Take the lease again on a host that replaced its kernel (the old holder died
        with it)."""
        self.release()
        self.lease = acquire(shell, self.host, self.run_id, self.timeout)

    def note(self) -> dict[str, Any]:
        """What taking the lease found, for the workers of the run that holds it."""
        return {"busy": self.busy, "took_over": self.took_over, "reaped": self.reaped}

    @classmethod
    def noted(cls, host: str, run_id: str, timeout: float, note: dict[str, Any]) -> HostHold:
        """The hold a worker has: what its controller's `note()` said."""
        return cls(host, run_id, timeout, None, note["busy"], note["took_over"],
                   list(note["reaped"]))

    def release(self) -> None:
        """Let the lease go, if this run holds it."""
        if self.lease:
            self.lease.release()
            self.lease = None
