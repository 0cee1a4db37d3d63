"""The powernest pytest plugin: options, markers, parametrization, fixtures,
the results journal and the JUnit report.

Data flow: hosts.yaml -> Inventory -> cases parametrized by `target`
(host x API) or `host` -> fixtures `host_session`, `l1`, `l2` -> the suite
compares what it observed with `powernest.nested` -> the journal gets one
line per event -> junit.xml is built from the journal when the run ends.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from powernest.guests import L1Guest, L2Guest
from powernest.hosts import HostSession
from powernest.inventory import Host, Inventory, InventoryError, Kind, load_inventory
from powernest.lab import LabImages, build_lab, find_lab
from powernest.lpar import L1, Lpar
from powernest.nested import API, Deviation, l0_supports, unsupported_reason
from powernest.pool import L1Pool, Target
from powernest.reporting import dashboard, journal, junit

MARKERS = {
    "premerge": "the fast gating subset (make premerge)",
    "nightly": "long cases run nightly (make run)",
    "api_v1": "cases under API v1 (nested-hv)",
    "api_v2": "cases under API v2 (nested-papr)",
    "kexec": "cases that kexec an L1",
    "slow": "cases that take minutes",
}
_CTX = pytest.StashKey["RunContext"]()
_current: dict[str, str] = {}   # the nodeid running in this process, for attach events


@dataclass
class RunContext:
    """One run: its id, where its results go, and the hosts it uses."""

    run_id: str
    run_dir: Path
    inventory: Inventory
    hosts: tuple[Host, ...]
    writes_report: bool
    lease_timeout: float

    @property
    def journal(self) -> Path:
        return self.run_dir / journal.JOURNAL

    @property
    def console_dir(self) -> Path:
        return self.run_dir / "consoles"

    def attach(self, path: Path) -> None:
        """Attach a console log to the case running in this process."""
        nodeid = _current.get("nodeid")
        if nodeid:
            journal.append(self.journal, "attach", nodeid=nodeid,
                           path=str(path.relative_to(self.run_dir)))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("powernest")
    group.addoption("--inventory", default=os.environ.get("POWERNEST_INVENTORY", "hosts.yaml"),
                    help="host inventory file (default: hosts.yaml)")
    group.addoption("--hosts", default="", help="comma-separated host names to use (default: all)")
    group.addoption("--reports", default="reports", help="where run directories go")
    group.addoption("--run-id", default="", help="name of this run (default: time-based)")
    group.addoption("--lease-timeout", type=float, default=120.0,
                    help="seconds to wait for a host another run holds, then skip it")


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _point_latest(reports: Path, run_dir: Path) -> None:
    link = reports / "latest"
    tmp = reports / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    path = Path(config.getoption("inventory"))
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    try:
        inventory = load_inventory(path)
        names = [n for n in config.getoption("hosts").split(",") if n]
        hosts = inventory.select(names)
    except InventoryError as exc:
        raise pytest.UsageError(f"bad inventory:\n{exc}") from None
    workerinput = getattr(config, "workerinput", None)
    run_id = (workerinput or {}).get("powernest_run_id") or config.getoption("run_id") \
        or _new_run_id()
    reports = Path(config.getoption("reports"))
    if not reports.is_absolute():
        reports = Path(config.invocation_params.dir) / reports
    run_dir = reports / run_id
    ctx = RunContext(run_id, run_dir, inventory, hosts, writes_report=workerinput is None,
                     lease_timeout=config.getoption("lease_timeout"))
    config.stash[_CTX] = ctx
    config.pluginmanager.register(LparKexecsLast(), "powernest-lpar-kexecs-last")
    (run_dir / "consoles").mkdir(parents=True, exist_ok=True)
    if ctx.writes_report:
        journal.append(ctx.journal, "run", run_id=run_id, inventory=str(path),
                       hosts=[h.name for h in hosts], controller=socket.gethostname(),
                       started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        _point_latest(reports, run_dir)
        config.pluginmanager.register(JournalWriter(ctx), "powernest-journal")
    # A terminated controller still runs fixture teardown: guests are killed.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker joins the controller's run."""
    node.workerinput["powernest_run_id"] = node.config.stash[_CTX].run_id


def context(config: pytest.Config) -> RunContext:
    return config.stash[_CTX]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by target or host first, so every test id starts with the host."""
    ctx = context(metafunc.config)
    if "target" in metafunc.fixturenames:
        targets = [Target(h, api) for h in ctx.hosts for api in h.offered_apis]
        metafunc.parametrize("target", targets, ids=[t.id for t in targets], scope="session")
    elif "host" in metafunc.fixturenames:
        metafunc.parametrize("host", ctx.hosts, ids=[h.name for h in ctx.hosts],
                             scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark cases with their API and group them per host for pytest-xdist.

    Runs first: xdist reads the groups in its own hook of the same name.
    """
    for item in items:
        params = getattr(item, "callspec", None)
        target = params.params.get("target") if params else None
        host = target.host if isinstance(target, Target) else (
            params.params.get("host") if params else None)
        if isinstance(target, Target):
            item.add_marker(getattr(pytest.mark, target.api.marker))
        if isinstance(host, Host):
            item.add_marker(pytest.mark.xdist_group(host.name))


class LparKexecsLast:
    """Runs the cases that kexec an LPAR after that LPAR's other cases.

    The LPAR is the L1 its other cases share, and nothing resets it after a
    kexec.  A hook of its own, run last: pytest's fixture-scope ordering of the
    items comes before it, and the marking hook above must run first.
    """

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=self.kexecs_an_lpar)   # stable: every other order is kept

    @staticmethod
    def kexecs_an_lpar(item: pytest.Item) -> bool:
        params = getattr(item, "callspec", None)
        target = params.params.get("target") if params else None
        return (isinstance(target, Target) and target.host.kind is Kind.POWERVM
                and item.get_closest_marker("kexec") is not None)


# ---- the journal: every case is on disk as soon as it ends -------------------------

def pytest_runtest_setup(item: pytest.Item) -> None:
    _current["nodeid"] = item.nodeid


def _case_info(nodeid: str, ctx: RunContext) -> tuple[str, dict[str, str]]:
    """A case's suite name (host/API) and properties, from its test id alone.

    Test ids start with the target (`p10-emulated-nested-papr`) or the host
    name, so this works in the controller of a pytest-xdist run, which never
    collects the items themselves.
    """
    nodeid = test_id(nodeid)
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


def test_id(nodeid: str) -> str:
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
                       name=test_id(nodeid).split("::")[-1], classname=_classname(nodeid),
                       suite=suite, properties=props)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.phases.setdefault(report.nodeid, []).append(report)
        if report.when == "teardown":
            self._write_end(self.phases.pop(report.nodeid))

    def _write_end(self, reports: list[pytest.TestReport]) -> None:
        outcome, decisive = _outcome(reports)
        props = {k: str(v) for r in reports for k, v in r.user_properties if k != "attachment"}
        attached = [str(v) for r in reports for k, v in r.user_properties if k == "attachment"]
        details = "" if outcome in ("passed", "skipped") else str(decisive.longreprtext)
        journal.append(self.ctx.journal, "end", nodeid=reports[0].nodeid, outcome=outcome,
                       duration=round(sum(r.duration for r in reports), 3),
                       message=_message(outcome, decisive), details=details,
                       properties=props, attachments=list(dict.fromkeys(attached)))

    def pytest_sessionfinish(self) -> None:
        if self.ctx.journal.exists():
            self.junit = junit.write(journal.read(self.ctx.journal),
                                     self.ctx.run_dir / "junit.xml",
                                     hostname=socket.gethostname())
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


# ---- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def run_context(pytestconfig: pytest.Config) -> RunContext:
    return context(pytestconfig)


@pytest.fixture(scope="session")
def lab() -> LabImages:
    """The emulated lab's boot images, built first if the cache has none."""
    return find_lab() or build_lab()


class HostSessions(dict[str, HostSession]):
    """The run's connected hosts, opened (and leased) on first use."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__()
        self.ctx = ctx

    def get_session(self, host: Host) -> HostSession:
        if host.name not in self:
            self[host.name] = HostSession.open(host, self.ctx.run_id, self.ctx.lease_timeout)
        return self[host.name]


@pytest.fixture(scope="session")
def host_sessions(run_context: RunContext) -> Iterator[HostSessions]:
    sessions = HostSessions(run_context)
    yield sessions
    for s in sessions.values():
        s.close()


@pytest.fixture(scope="session")
def pool(run_context: RunContext, lab: LabImages,
         host_sessions: HostSessions) -> Iterator[L1Pool]:
    """Boots guests for the run and kills them all at its end."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    p = L1Pool(run_context.run_id, run_context.console_dir, lab,
               host_sessions.get_session, on_console=run_context.attach,
               worker=worker)
    yield p
    p.close()


def _host_of(request: pytest.FixtureRequest) -> Host | None:
    params = getattr(request.node, "callspec", None)
    params = params.params if params else {}
    if isinstance(params.get("target"), Target):
        return params["target"].host
    return params.get("host")


@pytest.fixture
def host_session(request: pytest.FixtureRequest, host_sessions: HostSessions) -> HostSession:
    """The connected host of this case (from its `target` or `host` parameter)."""
    host = _host_of(request)
    if host is None:
        raise pytest.UsageError(f"{request.node.nodeid}: host_session needs a host or target")
    return host_sessions.get_session(host)


def skip_unless_offered(target: Target, session: HostSession) -> None:
    """Skip, with the reason, a case on a host leased by another run, or whose API
    the host's L0 version does not have."""
    if session.busy:
        pytest.skip(session.busy)
    version = session.qemu_version
    if version and not l0_supports(target.api, version):
        pytest.skip(unsupported_reason(target.api, version))


@pytest.fixture(scope="session")
def l1(target: Target, pool: L1Pool) -> Iterator[L1]:
    """A 6.12 L1 on the target with kvm and kvm-hv loaded, shared by the target's cases
    (on a powervm host: the LPAR, with kvm-hv as it finds it or loaded now)."""
    skip_unless_offered(target, pool.session_for(target.host))
    guest = pool.l1_with_kvm(target)
    yield guest
    pool.stop(guest)


@pytest.fixture(scope="session")
def l2(l1: L1, target: Target, pool: L1Pool) -> Iterator[L2Guest]:
    """An L2 booted in the shared L1 under -accel kvm, shared by the target's cases."""
    guest = pool.boot_l2(l1, target)
    yield guest
    pool.stop(guest)


@pytest.fixture(autouse=True)
def _case_records(request: pytest.FixtureRequest, run_context: RunContext,
                  host_sessions: HostSessions) -> Iterator[None]:
    """Record the case's L0 and lease; afterwards attach the logs of the guests it used."""
    host = _host_of(request)
    if host is not None:
        session = host_sessions.get_session(host)
        target = request.node.callspec.params.get("target")
        if isinstance(target, Target):
            skip_unless_offered(target, session)
        elif session.busy:
            pytest.skip(session.busy)
        props = request.node.user_properties
        props.append(("l0", session.l0))
        if session.lease and session.lease.took_over:
            props.append(("lease_taken_over_from", session.lease.took_over))
        if session.reaped:
            props.append(("reaped_stale_guests", " ".join(session.reaped)))
    yield
    for value in request.node.funcargs.values():
        if isinstance(value, L1Guest | L2Guest | Lpar):
            level = "l2" if isinstance(value, L2Guest) else "l1"
            rel = str(value.log_path.relative_to(run_context.run_dir))
            request.node.user_properties.append(("attachment", rel))
            if value.kernel_release:
                request.node.user_properties.append((f"{level}_kernel", value.kernel_release))
            if not isinstance(value, Lpar) and value.boot_seconds:
                request.node.user_properties.append((f"{level}_boot_seconds",
                                                     round(value.boot_seconds, 1)))


def expect_deviations(request: pytest.FixtureRequest, deviations: tuple[Deviation, ...],
                      api: API, session: HostSession) -> list[Deviation]:
    """Mark the case a strict xfail for each known deviation of this L0; return them."""
    found = [d for d in deviations
             if session.nested_by_qemu and d.applies(api, session.qemu_version)]
    for d in found:
        request.node.add_marker(pytest.mark.xfail(strict=True,
                                                  reason=d.reason(session.qemu_version)))
    return found
