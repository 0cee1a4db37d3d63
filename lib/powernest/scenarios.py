"""Multi-step procedures the suites observe: kexec chains, kvm-hv reloads, resets.

`run_chain()` takes a fresh L1 through a `Scenario` and records, at each
stage, what the running kernel did when kvm-hv loaded and whether its KVM
runs a VM (the KVM probe, `powernest.kvmprobe`: what a stage asks is whether
KVM works, not how an L2 Linux boots, which the L2 suites check).  It judges
nothing: the suites compare the stages with the expectations in
`powernest.nested`.

A chain's stages: `boot` (the first kernel), `after` (the kexec'd kernel, or
kvm-hv reloaded) and, where the host kind resets an L1, `reset` (after
`reboot -f`).  On a powervm host the L1 is the LPAR, kexec'd only into its
own kernel series and never reset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from powernest import timing
from powernest.console import ConsoleError
from powernest.errors import Unavailable
from powernest.guests import L1
from powernest.kinds import Ability, Target, kind_of
from powernest.nested import API, observed_api, registers
from powernest.pool import GuestPool


@dataclass(frozen=True)
class Scenario:
    """Boot `first`; then kexec into `then` (None: rmmod and insmod kvm-hv instead)."""

    id: str
    first: str
    then: str | None
    l2_running: bool = False   # an L2 runs in the L1 when its kernel is replaced


SCENARIOS = (
    Scenario("6.12-to-6.1", "6.12", "6.1"),
    Scenario("6.1-to-6.12", "6.1", "6.12"),
    Scenario("6.12-to-6.12", "6.12", "6.12"),
    Scenario("6.12-to-6.12-l2-running", "6.12", "6.12", l2_running=True),
    Scenario("kvm-hv-reload", "6.12", None),
)


@dataclass
class Stage:
    """What one kernel in the chain did when kvm-hv loaded, and whether an L2 ran."""

    kernel: str
    kvm_hv_loaded: bool
    dmesg: str
    vm_ran: bool              # the KVM probe ran under -accel kvm
    vm_detail: str
    registered_before: bool   # a v2 kernel had registered with L0 earlier since reset
    seconds: float = 0.0      # how long the kexec (or reload) before this stage took

    def api(self) -> API | None:
        return observed_api(self.dmesg, self.kernel, self.kvm_hv_loaded)


def run_chain(pool: GuestPool, target: Target, scenario: Scenario) -> dict[str, Stage]:
    """Run `scenario` in a fresh L1 of `target`; its stages by name (see the module
    docstring).  `Unavailable` if the host cannot run it."""
    kind = kind_of(target.host)
    if scenario.then is not None and not kind.allows_kexec(target.host):
        raise Unavailable(f"{target.host.name} does not allow kexec (allow_kexec: false)")
    # The first stage is the first kernel as booted: restored from the state saved at its
    # prompt, before kvm-hv ever loaded (identical, 2 s sooner under TCG).
    l1 = pool.l1(target, scenario.first)
    try:
        if scenario.then is not None and (reason := l1.kexec_unavailable(scenario.then)):
            raise Unavailable(reason)
        stages = _first_two(pool, l1, target, scenario)
        if kind.lacks(Ability.RESETS_L1, target.host) is None:
            l1.reboot(target.host.timeouts.l1_boot)
            loaded = l1.load_kvm().ok
            stages["reset"] = _observe(pool, l1, target, False, loaded)
        return stages
    finally:
        pool.stop(l1)


def _first_two(pool: GuestPool, l1: L1, target: Target,
               scenario: Scenario) -> dict[str, Stage]:
    """The stages as booted, then after the kexec or reload."""
    # A kernel exec'd earlier (an LPAR's, in this run) already registered with L0.
    registered_before = l1.kexecs > 0
    loaded = l1.load_kvm().ok
    # without KVM there is nothing to keep running; the first stage's check says so
    running = pool.l2(l1, target) if scenario.l2_running and loaded else None
    first = _observe(pool, l1, target, registered_before, loaded)
    before = registered_before or registers(target.api, first.kernel, first.kvm_hv_loaded)
    started = time.monotonic()
    if scenario.then is None:
        loaded = l1.reload_kvm_hv().ok
    else:
        with timing.phase(timing.KEXEC):
            l1.kexec(scenario.then, target.host.timeouts.l1_boot)
        loaded = l1.load_kvm().ok
    seconds = time.monotonic() - started
    if running:
        pool.forget(running)  # it went away with the kernel that ran it
    after = replace(_observe(pool, l1, target, before, loaded), seconds=seconds)
    return {"boot": first, "after": after}


def _observe(pool: GuestPool, l1: L1, target: Target, registered_before: bool,
             loaded: bool) -> Stage:
    dmesg = l1.dmesg()
    vm_ran, detail = _probe(pool, l1, target)
    return Stage(l1.kernel, loaded, dmesg, vm_ran, detail, registered_before)


def _probe(pool: GuestPool, l1: L1, target: Target) -> tuple[bool, str]:
    """Whether `l1`'s KVM runs a VM; what the probe did, or why it did not run."""
    try:
        probe = pool.kvm_probe(l1, target)
    except ConsoleError as exc:
        return False, str(exc).splitlines()[0] + "\n" + str(exc)[-800:]
    pool.stop(probe)
    return True, (f"the KVM probe ran under -accel kvm and made its hcall "
                  f"({probe.boot_seconds:.1f} s)")
