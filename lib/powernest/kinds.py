"""Host kinds: what a `tcg`, `kvm` or `powervm` host is and can do, one class each.

The kind of a host is chosen once (`kind_of`), from the inventory; everything
that differs between kinds is answered here, so that the rest of the library
and the suites never branch on the kind:

- how its L1s are accelerated, which APIs and whether kexec it offers by default;
- how to probe its L0 (QEMU's version, or the LPAR's device tree) (`probe`);
- what it can do, as data (`Ability`), with the reason where it cannot, which the
  `requires` marker turns into a skip; whether it boots its L1s or is its own one L1
  (`Ability.BOOTS_L1`) is what the pool (`powernest.pool`) reads to get one.

A kind is data and a probe: it imports nothing that starts guests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from powernest import qemu
from powernest.inventory import Host, Kind
from powernest.nested import API, NestedCode
from powernest.shell import Shell


class Ability(StrEnum):
    """Something a case may need from its host kind (`@pytest.mark.requires(...)`)."""

    STARTS_L0_QEMU = "starts an L0 QEMU"
    BOOTS_L1 = "boots the L1s"           # without it, the host itself is the one L1
    RESETS_L1 = "resets an L1"
    RELOADS_KVM_HV = "reloads kvm-hv in an L1"
    CRASHES_L0 = "runs cases that may crash its L0"   # real hosts: only by inventory opt-in


@dataclass(frozen=True)
class Target:
    """What a parametrized case runs against: a host and the API its L0 offers."""

    host: Host
    api: API

    @property
    def id(self) -> str:
        return f"{self.host.name}-{self.api.value}"


@dataclass(frozen=True)
class L0:
    """A host's L0 hypervisor, as probed."""

    qemu_version: tuple[int, int, int] | None
    description: str       # as a report shows it
    nested_code: NestedCode  # whose nested-API code serves the L1s (its deviations apply)
    platform: str = ""     # an LPAR's /proc/device-tree/model
    processor: str = ""    # an LPAR's processor, as /proc/cpuinfo names it (its mode)
    firmware: str = ""     # an LPAR's firmware level (ibm,fw-vernum_encoded)


class HostKind:
    """One kind of host; see the module docstring."""

    kind: ClassVar[Kind]
    accel: ClassVar[Literal["tcg", "kvm"]]   # how the suite's L1s run on the L0
    default_apis: ClassVar[tuple[API, ...]]
    kexec_default: ClassVar[bool]
    missing: ClassVar[dict[Ability, str]]  # what it cannot do, and why
    nested_code: ClassVar[NestedCode] = NestedCode.LINUX_KVM  # whose code serves its L1s

    def lacks(self, ability: Ability, host: Host) -> str | None:
        """Why `host`, of this kind, cannot do `ability`; None if it can."""
        if ability is Ability.CRASHES_L0 and host.allow_destructive:
            return None
        return self.missing.get(ability)

    def apis(self, host: Host) -> tuple[API, ...]:
        """The APIs `host` is tested under: the inventory's, else what the kind offers."""
        return host.apis if host.apis is not None else self.default_apis

    def allows_kexec(self, host: Host) -> bool:
        return host.allow_kexec if host.allow_kexec is not None else self.kexec_default

    def targets(self, host: Host) -> list[Target]:
        return [Target(host, api) for api in self.apis(host)]

    def probe(self, shell: Shell, qemu_binary: str) -> L0:
        """What the host's L0 is: its QEMU's version, run there."""
        version = qemu.version(shell, qemu_binary)
        shown = ".".join(map(str, version)) if version else "unknown"
        return L0(version, f"QEMU {shown} ({self.accel.upper()})", self.nested_code)

    def cpu_unavailable(self, host: Host, cpu: str) -> str | None:
        """Why an L1 of `cpu` cannot run on `host`; None if it can."""
        return None


NOT_DESTRUCTIVE = ("the case may crash the host's L0, and its inventory entry does not "
                   "allow that (allow_destructive: false)")


class TcgKind(HostKind):
    """The emulated lab: QEMU TCG on the host is L0, with its own nested-API code; an L0
    that dies takes nothing else with it."""

    kind = Kind.TCG
    accel = "tcg"
    default_apis = (API.V1, API.V2)
    kexec_default = True
    nested_code = NestedCode.QEMU
    missing: ClassVar[dict[Ability, str]] = {}


class KvmKind(HostKind):
    """A bare-metal POWER host running KVM-HV: L1s under `-accel kvm`, Linux's nested code."""

    kind = Kind.KVM
    accel = "kvm"
    default_apis = (API.V1,)
    kexec_default = False
    missing: ClassVar[dict[Ability, str]] = {Ability.CRASHES_L0: NOT_DESTRUCTIVE}

    def cpu_unavailable(self, host: Host, cpu: str) -> str | None:
        return None if cpu == host.cpu else f"under KVM the guest CPU is the host's ({host.cpu})"


NO_L0_QEMU = "a powervm host has no L0 QEMU to start"
# An LPAR's platform, processor (its compatibility mode) and firmware level, one a line.
_LPAR_PROBE = r'''tr -d '\0' </proc/device-tree/model 2>/dev/null; echo
sed -n 's/^cpu[[:space:]]*: \([^,]*\).*/\1/p' /proc/cpuinfo | head -n 1
tr -d '\0' </proc/device-tree/openprom/ibm,fw-vernum_encoded 2>/dev/null; echo
'''
NO_RESET = "the suite does not reset an LPAR"
NO_RELOAD = "the suite does not unload kvm-hv on an LPAR"


class PowervmKind(HostKind):
    """A PowerVM LPAR with KVM: the LPAR is the L1, reached over SSH; never reset."""

    kind = Kind.POWERVM
    accel = "kvm"
    default_apis = (API.V1, API.V2)
    kexec_default = False
    missing: ClassVar[dict[Ability, str]] = {
        Ability.STARTS_L0_QEMU: NO_L0_QEMU,
        Ability.BOOTS_L1: "the LPAR is the L1: the suite connects to it",
        Ability.RESETS_L1: NO_RESET,
        Ability.RELOADS_KVM_HV: NO_RELOAD,
        Ability.CRASHES_L0: NOT_DESTRUCTIVE,
    }

    def probe(self, shell: Shell, qemu_binary: str) -> L0:
        """The L0 is the LPAR's firmware: PowerVM, or QEMU (the twin), per its device tree;
        its answers depend on the processor and the firmware level, which are recorded."""
        said = shell.run(["sh", "-c", _LPAR_PROBE], timeout=30).stdout.split("\n")
        platform, processor, firmware = (said + ["", "", ""])[:3]
        seen = f"processor {processor or 'unknown'}, firmware {firmware or 'level unknown'}"
        if "emulated by qemu" in platform:
            return L0(None, f"QEMU, TCG (seen from the LPAR: {platform!r}, {seen}; "
                      "version unknown)", NestedCode.QEMU, platform, processor, firmware)
        return L0(None, f"PowerVM ({platform or 'platform unknown'}, {seen})",
                  NestedCode.POWERVM, platform, processor, firmware)


_KINDS: dict[Kind, HostKind] = {k.kind: k() for k in (TcgKind, KvmKind, PowervmKind)}


def kind_of(host: Host) -> HostKind:
    """The kind of `host`, chosen once for all that is done with it."""
    return _KINDS[host.kind]
