"""The journal: every case is on disk as soon as it ends; junit.xml at the end.

Data flow: each case's start and end (and the console logs it used, the one
that failed it first) are appended to the run's journal by the controlling
process; when the run ends, junit.xml (attachments relative to
`--attachments-base`, `--junit-strict` for junit-10.xsd) and the dashboard
are built from the journal alone.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Protocol

import pytest

from powernest.inventory import Host
from powernest.nested import API
from powernest.reporting import dashboard, journal, junit


class RunContext(Protocol):
    """What the journal writer reads of its run (`plugin.run.RunContext` has it)."""

    run_id: str
    run_dir: Path
    hosts: tuple[Host, ...]
    attachments_base: Path
    junit_strict: bool

    @property
    def journal(self) -> Path: ...


def _case_info(nodeid: str, ctx: RunContext) -> tuple[str, dict[str, str]]:
    """A case's suite name (host/API) and properties, from its test id alone.

    Test ids start with the target (`p10-emulated-nested-papr`) or the host
    name, so this works in the controller of a pytest-xdist run, which never
    collects the items themselves.
    """
    nodeid = case_id(nodeid)
    param = nodeid.rpartition("[")[2].rstrip("]") if nodeid.endswith("]") else ""
    props = {"run_id": ctx.run_id}
    hosts = sorted(ctx.hosts, key=lambda h: len(h.name), reverse=True)
    host = next((h for h in hosts if param == h.name or param.startswith(h.name + "-")), None)
    if host is None:
        return "controller", props
    props.update(host=host.name, kind=host.kind.value, cpu=host.cpu)
    if unverified := unverified_hops(host):
        props["ssh_host_key_not_verified"] = " ".join(unverified)
    rest = param[len(host.name) + 1:]
    api = next((a for a in API if rest == a.value or rest.startswith(a.value + "-")), None)
    if api is None:
        return host.name, props
    props["api"] = api.value
    return f"{host.name}/{api.value}", props


def unverified_hops(host: Host) -> list[str]:
    """The SSH hops to `host` (jump hosts included) whose host key the inventory
    says not to verify."""
    hops = []
    ssh = host.ssh
    while ssh is not None:
        if not ssh.verify_host_key:
            hops.append(f"{ssh.host}:{ssh.port}")
        ssh = ssh.via
    return hops


def case_id(nodeid: str) -> str:
    """A nodeid without the `@group` suffix pytest-xdist's loadgroup adds."""
    head, sep, tail = nodeid.rpartition("]@")
    return head + "]" if sep and "/" not in tail and "::" not in tail else nodeid


def _classname(nodeid: str) -> str:
    return nodeid.split("::")[0].removesuffix(".py").replace("/", ".")


def _outcome(reports: list[pytest.TestReport]) -> tuple[str, pytest.TestReport]:
    """One verdict for a case from its setup, call and teardown reports."""
    by_phase = {r.when: r for r in reports}
    setup, call, teardown = (by_phase.get(w) for w in ("setup", "call", "teardown"))
    for phase in (setup, call):
        if phase is None:
            continue
        if hasattr(phase, "wasxfail"):
            return ("xfailed" if phase.skipped else "xpassed"), phase
        if phase.skipped:
            return "skipped", phase
        if phase.failed:
            return ("error" if phase is setup else "failed"), phase
    if teardown is not None and teardown.failed:
        return "error", teardown
    return "passed", call or setup or reports[0]


def _message(outcome: str, report: pytest.TestReport) -> str:
    if outcome == "xfailed":
        return str(getattr(report, "wasxfail", ""))
    if outcome == "skipped" and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if isinstance(report.longrepr, str):  # a strict XPASS: "[XPASS(strict)] <deviation>"
        return report.longrepr.splitlines()[0][:500]
    crash = getattr(report.longrepr, "reprcrash", None)
    return crash.message.splitlines()[0][:500] if crash else ""


class JournalWriter:
    """Writes the run's journal as cases start and end, and junit.xml at the end.

    Registered only in the controlling process (under pytest-xdist the
    workers' reports arrive here, with their user properties).
    """

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.phases: dict[str, list[pytest.TestReport]] = {}
        self.junit: Path | None = None
        self.dashboard: Path | None = None
        self.dashboard_error = ""

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        suite, props = _case_info(nodeid, self.ctx)
        journal.append(self.ctx.journal, "start", nodeid=nodeid,
                       name=case_id(nodeid).split("::")[-1], classname=_classname(nodeid),
                       suite=suite, properties=props)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.phases.setdefault(report.nodeid, []).append(report)
        if report.when == "teardown":
            self._write_end(self.phases.pop(report.nodeid))

    def _write_end(self, reports: list[pytest.TestReport]) -> None:
        outcome, decisive = _outcome(reports)
        props = {k: str(v) for r in reports for k, v in r.user_properties if k != "attachment"}
        attached = [str(v) for r in reports for k, v in r.user_properties if k == "attachment"]
        if junit.FAILED_LOG in props:    # the log of the guest that failed it comes first
            attached.insert(0, props[junit.FAILED_LOG])
        details = "" if outcome in ("passed", "skipped") else str(decisive.longreprtext)
        message = _message(outcome, decisive)
        if outcome == "failed" and junit.L0_STARVED in props:   # the host's, not the product's
            starved = props[junit.L0_STARVED]
            outcome, message = "error", f"L0 starved of CPU: {starved}; it saw: {message}"
        journal.append(self.ctx.journal, "end", nodeid=reports[0].nodeid, outcome=outcome,
                       duration=round(sum(r.duration for r in reports), 3),
                       message=message, details=details,
                       properties=props, attachments=list(dict.fromkeys(attached)))

    def pytest_sessionfinish(self) -> None:
        if self.ctx.journal.exists():
            self.junit = junit.write(journal.read(self.ctx.journal),
                                     self.ctx.run_dir / "junit.xml",
                                     hostname=socket.gethostname(),
                                     base=self.ctx.attachments_base,
                                     strict=self.ctx.junit_strict)
            try:
                self.dashboard = dashboard.build(self.ctx.run_dir.parent, self.ctx.run_dir)
            except Exception as exc:  # the page is a convenience: the run's result stands
                self.dashboard_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for host in self.ctx.hosts:
            if unverified := unverified_hops(host):
                terminalreporter.write_line(
                    f"powernest: warning: {host.name}: SSH host key NOT verified for "
                    f"{', '.join(unverified)} (verify_host_key: false)", yellow=True)
        if self.junit:
            terminalreporter.write_line(f"powernest: JUnit report {self.junit}")
        if self.dashboard:
            terminalreporter.write_line(f"powernest: dashboard {self.dashboard}")
        if self.dashboard_error:
            terminalreporter.write_line(f"powernest: warning: dashboard not rebuilt: "
                                        f"{self.dashboard_error}", yellow=True)
