"""Replay an hcall reproducer in a fresh L1 on this machine, without the suite.

A reproducer is the script a case ran (`script.compile_case`); its header
names the API.  `replay()` boots a fresh lab L1 under a local QEMU TCG L0
offering that API (any QEMU binary: a developer's own build), loads pnhcall.ko,
runs the script, and reports what came back or how the L0 died.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from powernest.errors import PowernestError
from powernest.guests import L0Died
from powernest.hcalls import driver
from powernest.hosts import HostSession
from powernest.inventory import Host, Kind
from powernest.kinds import Target
from powernest.lab import LabImages
from powernest.nested import API
from powernest.pool import GuestPool

_API = re.compile(r"^# API: (\S+)", re.M)
SCRIPT = "/tmp/pn-replay.sh"


@dataclass(frozen=True)
class Replay:
    """What a replayed script printed, and how its L0 died if it did."""

    output: str
    l0_death: L0Died | None
    console_log: Path

    @property
    def summary(self) -> str:
        if self.l0_death is None:
            return "the script ran to its end; the L0 survived"
        return f"the L0 died ({self.l0_death.ended}): {self.l0_death.words}"


def script_api(text: str) -> API:
    """The API a reproducer runs under, from its header."""
    match = _API.search(text)
    if not match or match[1] not in {a.value for a in API}:
        raise PowernestError("not a powernest hcall reproducer: no '# API: nested-hv' or "
                             "'# API: nested-papr' header line")
    return API(match[1])


def replay(script: Path, lab: LabImages, workdir: Path, cpu: str = "power10",
           qemu: str = "qemu-system-ppc64", log: Callable[[str], None] = print) -> Replay:
    """Run `script` in a fresh L1 (see the module docstring); consoles go to `workdir`."""
    if lab.hcall_module is None:
        raise PowernestError("the lab has no pnhcall.ko (run `powernest lab build`)")
    text = script.read_text()
    api = script_api(text)
    run_id = f"replay-{secrets.token_hex(2)}"
    host = Host.model_validate({"name": "replay", "kind": Kind.TCG, "cpu": cpu,
                                "apis": [api], "qemu": qemu})
    session = HostSession.open(host, run_id, lease_timeout=5)
    pool = GuestPool(run_id, workdir, lab, lambda _: session)
    try:
        log(f"replay: booting an L1 under {session.l0.description}, {api.machine_prop}, -cpu {cpu}")
        l1 = pool.l1(Target(host, api))
        driver.install(l1, lab.hcall_module)
        driver.upload(l1, text.encode(), SCRIPT)
        log(f"replay: running {script.name} in {l1.name}")
        try:
            output = l1.run(["sh", SCRIPT], timeout=host.timeouts.command).stdout
            return Replay(output, None, l1.log_path)
        except L0Died as died:
            return Replay(died.output, died, l1.log_path)
    finally:
        pool.close()
        session.close()
