"""The guests of a run: every L1 and L2 it starts, and every LPAR it connects to.

`GuestPool.l1()` gets a fresh L1 for a target the way its host kind does
(restores one from the checkpoint of its configuration, or boots one with the
lab images, or connects to the LPAR); `l2()` boots an L2 inside an L1.  The
suites' fixtures decide which guests are shared (pytest's session scope) and
which a case gets for itself.  `close()` kills whatever
is still running, whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from powernest import kvmprobe, naming, timing
from powernest.bootwatch import BootStalled, BootTimes, Step
from powernest.errors import Unavailable
from powernest.guests import L1, L1Guest
from powernest.hosts import HostSession
from powernest.inventory import Host
from powernest.kinds import Ability, Target, kind_of
from powernest.l2 import L2_MILESTONES, PROBE_MILESTONES, L2Guest, L2Host
from powernest.lab import LabImages
from powernest.lpar import Lpar
from powernest.qemu import SPAPR_RNG, GuestSpec, checkpoint_key

# After this many L2 boots in a row stalled on one target (in the suites each in a fresh
# L1: a case whose guest failed retires its L1), its L0 boots no L2: the next fail at once.
STALLS_BEFORE_GIVING_UP = 2

# A checkpoint is saved with the L1 stopped (`qemu.save_state`); without this, QEMU
# would also restore it stopped.
RESTORED_L1S_RUN = ("-global", "migration.store-global-state=off")
# QEMU saves and loads checkpoints in its mapped-ram format from 9.0 on: an L1 restored
# in 0.22 s where the stream took 0.42 s (QEMU 10.0.2, TCG, 4 GiB).
MAPPED_RAM_SINCE = (9, 0, 0)


@dataclass
class GuestPool:
    """Starts guests for one run; `close()` stops them all."""

    run_id: str
    console_dir: Path
    lab: LabImages
    session_for: Callable[[Host], HostSession]
    on_console: Callable[[Path], None] = lambda path: None
    # a guest is up: level ("l1", "l2", "probe"), name, seconds, how ("boot", "checkpoint")
    on_started: Callable[[str, str, float, str], None] = lambda *guest: None
    before_kvm: Callable[[L1], None] = lambda l1: None   # e.g. start tracing its hcalls
    worker: str = ""    # the pytest-xdist worker, so guest names stay unique across workers
    boot_times: BootTimes = field(default_factory=BootTimes)   # bounds of boot milestones
    _guests: list[L1Guest | L2Guest] = field(default_factory=list)
    _lpars: dict[str, Lpar] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stalls: dict[str, list[BootStalled]] = field(default_factory=dict)   # by target id

    def l1(self, target: Target, kernel: str | None = None, *, booted: bool = False) -> L1:
        """A fresh L1 for `target` (on a powervm host: the LPAR); `stop()` it when done.

        Restored from a checkpoint unless `booted` (for cases that test the boot).
        `Unavailable` if another run holds the host or its L0 cannot offer the API.
        """
        if reason := self.session_for(target.host).unavailable(target.api):
            raise Unavailable(reason)
        if kind_of(target.host).lacks(Ability.BOOTS_L1, target.host):
            lpar = self.lpar(target)
            if kernel is not None and (reason := lpar.kexec_unavailable(kernel)):
                raise Unavailable(reason)
            return lpar
        return self.boot(target, kernel, restore=not booted)

    def l1_with_kvm(self, target: Target, *, booted: bool = False) -> L1:
        """`l1()` with kvm-hv loaded (on an LPAR: as found, or loaded now)."""
        l1 = self.l1(target, booted=booted)
        try:
            self.before_kvm(l1)
            l1.load_kvm()
        except BaseException:
            self.stop(l1)
            raise
        return l1

    def l1_spec(self, target: Target, kernel: str) -> GuestSpec:
        """The L0 command for an L1 of `target` running `kernel`."""
        host = target.host
        session = self.session_for(host)
        name = naming.guest_name(self.run_id, host.name,
                                 naming.l1_role(self.worker, next(self._ids)), target.api)
        return GuestSpec(name=name, kernel=session.path_of(self.lab.kernels[kernel]),
                         initrd=session.path_of(self.lab.l1_initrd),
                         machine_props=(target.api.machine_prop, *host.l1_machine),
                         accel=kind_of(host).accel, cpu=host.cpu, memory=host.memory,
                         qemu=session.qemu, data_dir=host.qemu_data_dir,
                         pidfile=f"/tmp/{name}.pid", extra=(*SPAPR_RNG, *RESTORED_L1S_RUN),
                         mapped_ram=(session.qemu_version or (0, 0, 0)) >= MAPPED_RAM_SINCE)

    def boot(self, target: Target, kernel: str | None = None, *,
             restore: bool = False) -> L1Guest:
        """Start an L1 running `kernel` (default: the host's `l1_kernel`); wait for its
        shell.  With `restore`, from the checkpoint of its configuration (see
        `L1Guest.start_from`)."""
        series = kernel or target.host.l1_kernel
        spec = self.l1_spec(target, series)
        timeouts = target.host.timeouts
        session = self.session_for(target.host)
        guest = L1Guest(session.shell, spec, self.console_dir / f"{spec.name}.log",
                        timeouts.l1_boot, timeouts.command, self.lab.kernel_releases[series])
        self._guests.append(guest)
        self.on_console(guest.log_path)
        with timing.phase(timing.L1_RESTORED if restore else timing.L1_BOOTED):
            if restore:
                key = checkpoint_key(spec, session.l0.description, self.lab.key)
                guest.start_from(session.checkpoint_path(key))
            else:
                guest.start()
        self.on_started("l1", guest.name, guest.boot_seconds, guest.started_from)
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

    def l2(self, l1: L2Host, target: Target, *, within: float | None = None,
           **spec: Any) -> L2Guest:
        """Start an L2 inside `l1` and wait until its init has printed its cpuinfo: each
        milestone within its learnt bound (`powernest.bootwatch`), or the whole boot
        `within` that many seconds (a case's own bound: not learnt from)."""
        return self._start_l2(l1, target, "l2", spec, within)

    def kvm_probe(self, l1: L2Host, target: Target) -> L2Guest:
        """Run the KVM probe (`powernest.kvmprobe`) in `l1` under -accel kvm until it has
        printed: whether KVM runs a VM there, in a second.  `GuestStartError` if QEMU
        refused, another `ConsoleError` if the probe never printed."""
        l1.run(kvmprobe.install_script(), check=True)
        return self._start_l2(l1, target, "probe",
                              {"kernel": kvmprobe.PATH, "initrd": None, "memory": "256M"})

    def _start_l2(self, l1: L2Host, target: Target, level: str, spec: dict[str, Any],
                  within: float | None = None) -> L2Guest:
        stalls = self._stalls.setdefault(target.id, [])
        if within is None and len(stalls) >= STALLS_BEFORE_GIVING_UP:
            first = str(stalls[0]).splitlines()[0]
            raise BootStalled(f"not started: the last {len(stalls)} L2 boots on {target.id} "
                              f"stalled; the first: {first}", stalls[0].log,
                              stalls[0].milestone)
        guest = L2Guest.in_l1(l1, self.console_dir, within or target.host.timeouts.l2_boot,
                              target.host.l2_machine, **spec)
        self._guests.append(guest)
        self.on_console(guest.log_path)
        milestones = PROBE_MILESTONES if level == "probe" else L2_MILESTONES
        kind = self.boot_kind(target, level, guest.spec.smp)
        steps = ([Step(m, within, "the case's bound") for m in milestones] if within
                 else self.boot_times.plan(kind, milestones, guest.boot_timeout))
        with timing.phase(timing.L2_BOOT):
            try:
                took = (guest.start_probe(steps) if level == "probe"
                        else guest.start(steps))
            except BootStalled as stall:
                if within is None:
                    stalls.append(stall)
                with contextlib.suppress(Exception):   # a stuck L2 must not go on spinning
                    self.stop(guest)
                raise
        if within is None:
            stalls.clear()
            self.boot_times.record(kind, took)
        self.on_started(level, guest.spec.name, guest.boot_seconds, "boot")
        return guest

    def boot_kind(self, target: Target, level: str, smp: int = 1) -> str:
        """What boots of one kind share their learnt bounds by (`bootwatch.BootTimes`)."""
        l0 = self.session_for(target.host).l0.description
        return f"{target.host.name}|{l0}|{target.api.value}|{level}|smp{smp}"

    def running_l1s(self) -> list[L1Guest]:
        """The L1s this pool started that still run."""
        return [g for g in self._guests if isinstance(g, L1Guest) and g.alive()]

    def stop(self, guest: L1 | L2Guest) -> None:
        """Stop a guest this pool started; nothing if it was stopped (or forgotten) already,
        or if it is an LPAR (never stopped)."""
        if guest in self._guests:
            guest.stop()
            self.forget(guest)

    def owns(self, guest: L1 | L2Guest) -> bool:
        """Whether this pool started `guest` and will stop it (an LPAR: never)."""
        return guest in self._guests

    def forget(self, guest: L1 | L2Guest) -> None:
        """Drop a guest that is already gone (e.g. an L2 whose L1 kernel was replaced)."""
        if guest in self._guests:
            self._guests.remove(guest)   # type: ignore[arg-type]

    def close(self) -> None:
        """Stop every guest, L2s first; never raises."""
        for guest in reversed(self._guests):
            with contextlib.suppress(Exception):  # keep stopping the others
                guest.stop()
        self._guests.clear()
