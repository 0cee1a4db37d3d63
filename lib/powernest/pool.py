"""Boots L1 guests for a run and kills every one of them at the end.

`L1Pool.boot()` starts a fresh L1 for a (host, API, kernel) with the lab
images (`lpar()` connects to a powervm host, which is its own L1); the
suites' fixtures decide which L1s are shared (pytest's session scope) and
which a case gets for itself.  `close()` kills whatever is still running,
whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from powernest.guests import L1Guest, L2Guest, L2Host
from powernest.hosts import HostSession
from powernest.inventory import Host, Kind
from powernest.lab import LabImages
from powernest.lpar import Lpar
from powernest.nested import API
from powernest.qemu import GuestSpec


@dataclass(frozen=True)
class Target:
    """What a parametrized case runs against: a host and the API its L0 offers."""

    host: Host
    api: API

    @property
    def id(self) -> str:
        return f"{self.host.name}-{self.api.value}"


@dataclass
class L1Pool:
    """Starts guests for one run; `close()` stops them all."""

    run_id: str
    console_dir: Path
    lab: LabImages
    session_for: Callable[[Host], HostSession]
    on_console: Callable[[Path], None] = lambda path: None
    worker: str = ""    # the pytest-xdist worker, so guest names stay unique across workers
    _guests: list[L1Guest | L2Guest] = field(default_factory=list)
    _lpars: dict[str, Lpar] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def l1_spec(self, target: Target, kernel: str = "6.12", cap: API | None = None,
                name: str | None = None) -> GuestSpec:
        """The L0 command for an L1 of `target`; `cap` overrides the API offered."""
        session = self.session_for(target.host)
        offered = target.api if cap is None else cap
        worker = f"{self.worker}-" if self.worker else ""
        name = name or f"pn.{self.run_id}.{target.id}.l1-{worker}{next(self._ids)}"
        return GuestSpec(name=name, kernel=session.path_of(self.lab.kernels[kernel]),
                         initrd=session.path_of(self.lab.l1_initrd),
                         machine_props=(f"{offered.cap}=on", *target.host.l1_machine),
                         accel="kvm" if target.host.kind is Kind.KVM else "tcg",
                         cpu=target.host.cpu, memory=target.host.memory,
                         qemu=session.qemu, data_dir=target.host.qemu_data_dir,
                         pidfile=f"/tmp/{name}.pid")

    def boot(self, target: Target, spec: GuestSpec | None = None) -> L1Guest:
        """Start an L1 and wait for its shell (the spec defaults to `l1_spec(target)`)."""
        spec = spec or self.l1_spec(target)
        timeouts = target.host.timeouts
        guest = L1Guest(self.session_for(target.host).shell, spec,
                        self.console_dir / f"{spec.name}.log", timeouts.l1_boot,
                        timeouts.command)
        self._guests.append(guest)
        self.on_console(guest.log_path)
        guest.start()
        return guest

    def lpar(self, target: Target) -> Lpar:
        """A powervm host, connected: the LPAR is the L1 (one object per host)."""
        name = target.host.name
        if name not in self._lpars:
            self._lpars[name] = Lpar(self.session_for(target.host), self.lab,
                                     self.console_dir / f"{name}.lpar.log")
        lpar = self._lpars[name]
        self.on_console(lpar.log_path)
        lpar.connect()
        return lpar

    def l1_with_kvm(self, target: Target) -> L1Guest | Lpar:
        """A 6.12 L1 with kvm-hv loaded (on a powervm host: the LPAR, with kvm-hv as
        it finds it or loaded now); `stop()` it when done."""
        l1 = self.lpar(target) if target.host.kind is Kind.POWERVM else self.boot(target)
        try:
            l1.load_kvm()
        except BaseException:
            self.stop(l1)
            raise
        return l1

    def boot_l2(self, l1: L2Host, target: Target, **spec: Any) -> L2Guest:
        """Start an L2 inside `l1` and wait until its init has printed its cpuinfo."""
        guest = L2Guest.in_l1(l1, self.console_dir, target.host.timeouts.l2_boot,
                              target.host.l2_machine, **spec)
        self._guests.append(guest)
        self.on_console(guest.log_path)
        guest.start()
        return guest

    def stop(self, guest: L1Guest | L2Guest | Lpar) -> None:
        guest.stop()
        if guest in self._guests:
            self._guests.remove(guest)

    def forget(self, guest: L1Guest | L2Guest) -> None:
        """Drop a guest that is already gone (e.g. an L2 whose L1 kernel was replaced)."""
        if guest in self._guests:
            self._guests.remove(guest)

    def close(self) -> None:
        """Stop every guest, L2s first; never raises."""
        for guest in reversed(self._guests):
            with contextlib.suppress(Exception):  # keep stopping the others
                guest.stop()
        self._guests.clear()
