"""A run of the suites: its id, its hosts, and where its results go.

`start_run(config)` is called by a suites directory's conftest.py.  It loads
the inventory (a bad one is a usage error naming the file, line and field)
and, unless pytest only collects, creates the run directory, points
`reports/latest` at it, journals the run and registers the `JournalWriter`
in the controlling process.  Under pytest-xdist every worker joins the
controller's run id.  The context holds the run's connected hosts
(`HostSessions`, closed when the session finishes) and its hcall traces.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from powernest import shard, timing
from powernest.hcalls.trace import HcallTraces
from powernest.hosts import HostSession
from powernest.inventory import Host, Inventory, InventoryError, load_inventory
from powernest.plugin.recording import JournalWriter
from powernest.reporting import journal
from powernest.version import code_version

_CTX = pytest.StashKey["RunContext"]()


class HostSessions(dict[str, HostSession]):
    """The run's connected hosts, opened (and leased) on first use.

    Under pytest-xdist the controller holds the leases (`leased`: what it found,
    per host), so that several workers can drive one host's targets."""

    def __init__(self, run_id: str, lease_timeout: float,
                 leased: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.lease_timeout = lease_timeout
        self.leased = leased

    def get_session(self, host: Host) -> HostSession:
        if host.name not in self:
            note = None if self.leased is None else self.leased[host.name]
            with timing.phase(timing.HOST):
                self[host.name] = HostSession.open(host, self.run_id, self.lease_timeout, note)
        return self[host.name]

    def close(self) -> None:
        for session in self.values():
            session.close()


@dataclass
class RunContext:
    """One run: its id, where its results go, and the hosts it uses."""

    run_id: str
    run_dir: Path
    inventory: Inventory
    hosts: tuple[Host, ...]
    lease_timeout: float
    attachments_base: Path = Path(".")   # junit.xml's attachment paths are relative to it
    junit_strict: bool = False           # per-case properties as system-out lines
    current: dict[str, str] = field(default_factory=dict)  # the case running in this process
    traces: HcallTraces = field(default_factory=HcallTraces)

    leased: dict[str, dict[str, Any]] | None = None   # a worker's: what the controller found

    def __post_init__(self) -> None:
        self.sessions = HostSessions(self.run_id, self.lease_timeout, self.leased)

    @property
    def journal(self) -> Path:
        return self.run_dir / journal.JOURNAL

    @property
    def console_dir(self) -> Path:
        return self.run_dir / "consoles"

    def attach(self, path: Path) -> None:
        """Attach a console log to the case running in this process."""
        nodeid = self.current.get("nodeid")
        if nodeid:
            journal.append(self.journal, "attach", nodeid=nodeid,
                           path=str(path.relative_to(self.run_dir)))


    def started(self, level: str, name: str, seconds: float, started_from: str) -> None:
        """Journal a guest up: how long its boot (or restore) took, for the run's figures."""
        journal.append(self.journal, "guest", nodeid=self.current.get("nodeid", ""),
                       level=level, name=name, seconds=round(seconds, 2), started_from=started_from)


def context(config: pytest.Config) -> RunContext | None:
    """The run, if the suites started one."""
    return config.stash.get(_CTX, None)


def _invocation_path(config: pytest.Config, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def start_run(config: pytest.Config) -> None:
    """Start this process's part of a run; see the module docstring."""
    path = _invocation_path(config, config.getoption("inventory"))
    try:
        inventory = load_inventory(path)
        hosts = inventory.select([n for n in config.getoption("hosts").split(",") if n])
        hosts = shard.hosts_of(hosts, shard.parse(config.getoption("shard")))
    except InventoryError as exc:
        raise pytest.UsageError(f"bad inventory:\n{exc}") from None
    workerinput = getattr(config, "workerinput", None)
    run_id = ((workerinput or {}).get("powernest_run_id") or config.getoption("run_id")
              or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2))
    reports = _invocation_path(config, config.getoption("reports"))
    base = _invocation_path(config, config.getoption("attachments_base") or ".")
    ctx = RunContext(run_id, reports / run_id, inventory, hosts,
                     config.getoption("lease_timeout"), base.resolve(),
                     config.getoption("junit_strict"),
                     leased=(workerinput or {}).get("powernest_leased"))
    config.stash[_CTX] = ctx
    if config.getoption("collectonly"):
        return
    ctx.console_dir.mkdir(parents=True, exist_ok=True)
    if workerinput is None:
        journal.append(ctx.journal, "run", run_id=run_id, inventory=str(path),
                       hosts=[h.name for h in hosts], controller=socket.gethostname(),
                       started=journal.now(), shard=config.getoption("shard"),
                       code=code_version())
        _point_latest(reports, ctx.run_dir)
        config.pluginmanager.register(JournalWriter(ctx), "powernest-journal")
        config.pluginmanager.register(XdistController(ctx), "powernest-xdist")
    # A terminated controller still runs fixture teardown: guests are killed.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


class XdistController:
    """pytest-xdist: every worker joins the controller's run, and the controller holds
    the hosts' leases for them (taken before the first worker starts, released when
    the session ends), so a host's targets can run in several workers."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["powernest_run_id"] = self.ctx.run_id
        node.workerinput["powernest_leased"] = {h.name: self._note(h) for h in self.ctx.hosts}

    def _note(self, host: Host) -> dict[str, Any]:
        try:
            return self.ctx.sessions.get_session(host).lease_note()
        except Exception as exc:   # unreachable: each of its cases fails with this
            return {"error": f"{type(exc).__name__}: {exc}"}


def _point_latest(reports: Path, run_dir: Path) -> None:
    link = reports / "latest"
    tmp = reports / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
