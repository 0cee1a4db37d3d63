"""What a host's L0 QEMU can be asked to start: an API (by its version), a CPU model,
a machine with nested caps on (started stopped, to see whether QEMU accepts it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from powernest import naming, qemu
from powernest.inventory import Host
from powernest.kinds import L0, kind_of
from powernest.nested import API, l0_supports, unsupported_reason
from powernest.qemu import StartCheck
from powernest.shell import Shell


@dataclass
class L0Qemu:
    """A host's L0 QEMU (`binary`, as probed: `l0`), for the checks before a start."""

    host: Host
    shell: Shell
    binary: str
    l0: L0
    run_id: str
    _cpus: set[str] | None = field(default=None, repr=False)

    def has_cpu(self, cpu: str) -> bool:
        """Whether this QEMU has the CPU model."""
        if self._cpus is None:
            self._cpus = qemu.cpu_models(self.shell, self.binary)
        return cpu in self._cpus

    def api_unavailable(self, api: API) -> str | None:
        """Why this QEMU (by its version) cannot offer `api`; None if it can."""
        version = self.l0.qemu_version
        if version and not l0_supports(api, version):
            return unsupported_reason(api, version)
        return None

    def caps_unavailable(self, cpu: str, caps: frozenset[API]) -> str | None:
        """Why QEMU cannot be asked here to start `cpu` with `caps`; None if it can."""
        reasons = (kind_of(self.host).cpu_unavailable(self.host, cpu),
                   *(self.api_unavailable(api) for api in API if api in caps))
        reason = next((r for r in reasons if r), None)
        if reason is None and not self.has_cpu(cpu):
            reason = f"{self.l0.description} has no {cpu} CPU model"
        return reason

    def check_caps(self, cpu: str, caps: frozenset[API], case: str) -> StartCheck:
        """Whether this QEMU starts a machine of `cpu` with `caps` on (and the host's
        `l1_machine` properties), stopped, and what it said."""
        spec = qemu.GuestSpec(
            name=naming.guest_name(self.run_id, self.host.name, f"caps-{case}"), kernel="",
            qemu=self.binary, data_dir=self.host.qemu_data_dir, cpu=cpu,
            accel=kind_of(self.host).accel,
            machine_props=(*(a.machine_prop for a in API if a in caps), *self.host.l1_machine))
        return qemu.check_start(self.shell, spec)
