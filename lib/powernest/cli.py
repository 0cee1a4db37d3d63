"""The `powernest` command: build the lab, run emulated hosts, check an inventory,
rebuild reports."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import click
import yaml

from powernest import scheduling, shard, twins
from powernest.console import ConsoleError
from powernest.errors import PowernestError
from powernest.hcalls import driver, replay
from powernest.hcalls.campaign import Campaign
from powernest.hcalls.runner import HcallRunner
from powernest.hosts import HostSession
from powernest.inventory import CPU_MODELS, InventoryError, Kind, load_inventory
from powernest.kinds import Ability, Target, kind_of
from powernest.lab import LabBuildError, build_lab, hcall_module_for, qemu_build
from powernest.nested import API
from powernest.pool import GuestPool
from powernest.reporting import coverage, dashboard, journal, junit, merge


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """powernest: conformance tests for nested virtualization on IBM POWER.

    Run the suites with `make run` (everything) or `make premerge` (the gate);
    this command holds the tools around them.
    """


@main.group()
def lab() -> None:
    """The emulated lab: boot images built from Debian packages."""


@lab.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if the cache is up to date.")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Cache directory (default: $POWERNEST_CACHE or ~/.cache/powernest).")
def lab_build(force: bool, cache: Path | None) -> None:
    """Build the L1/L2 kernels and initramfs images (does nothing when up to date)."""
    try:
        images = build_lab(cache, force=force, log=click.echo)
    except LabBuildError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"lab: {images.root}")


@lab.command("qemu")
@click.option("--asan", is_flag=True, required=True,
              help="With AddressSanitizer (the only variant so far).")
def lab_qemu(asan: bool) -> None:
    """Build this machine's QEMU from Debian's source with a sanitizer; print its path
    (for `powernest hcall campaign --qemu` or an inventory's `qemu`)."""
    try:
        binary = qemu_build.asan(log=lambda line: click.echo(f"qemu: {line}", err=True))
    except LabBuildError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(binary)


@lab.command("twin", context_settings={"ignore_unknown_options": True})
@click.argument("kinds")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=Path("twins"),
              show_default=True, help="Where keys, known_hosts, console logs and the "
              "inventory go.")
@click.option("--kernel", type=click.Choice(["6.12", "6.1"]), default="6.12", show_default=True,
              help="The lab kernel the twins boot (a powervm twin, the LPAR, runs it).")
def lab_twin(kinds: str, command: tuple[str, ...], workdir: Path, kernel: str) -> None:
    """Run emulated hosts (KINDS: powervm, kvm or powervm,kvm) until interrupted,
    or for as long as COMMAND runs.

    Writes DIR/twins.yaml, an inventory that describes each twin as it would the
    real host, and gives COMMAND its path in $POWERNEST_INVENTORY (the suites'
    default inventory):

        powernest lab twin powervm,kvm -- pytest suites -n 2 --dist loadgroup --no-loadscope-reorder
    """
    try:
        wanted = [Kind(k) for k in kinds.split(",")]
    except ValueError:
        raise click.BadParameter(f"{kinds!r}: give powervm, kvm or both, comma-separated",
                                 param_hint="KINDS") from None
    if Kind.TCG in wanted:
        raise click.BadParameter("tcg hosts need no twin: they are the emulated lab",
                                 param_hint="KINDS")
    running: list[twins.Twin] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        images = build_lab(log=click.echo)
        for kind in dict.fromkeys(wanted):
            click.echo(f"twin {kind.value}-twin: booting ...")
            twin = twins.start(kind, images, workdir.resolve(), f"{kind.value}-twin",
                               kernel=kernel)
            running.append(twin)
            click.echo(f"twin {twin.name}: SSH on 127.0.0.1:{twin.port} after "
                       f"{twin.boot_seconds:.1f} s; console {twin.log_path}")
        inventory_file = (workdir / "twins.yaml").resolve()
        inventory_file.write_text(yaml.safe_dump(
            {"hosts": [t.inventory_entry() for t in running]}, sort_keys=False))
        click.echo(f"twins: inventory {inventory_file}")
        if command:
            env = {**os.environ, "POWERNEST_INVENTORY": str(inventory_file)}
            sys.exit(subprocess.run(command, env=env).returncode)
        click.echo("twins: running; Ctrl-C stops them")
        while not any(t.ended.wait(1) for t in running):
            pass
        gone = next(t for t in running if t.ended.is_set())
        raise click.ClickException(f"twin {gone.name} stopped; see {gone.log_path}")
    except (LabBuildError, ConsoleError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        if command:
            sys.exit(130)   # the command was cut short: not a success
    finally:
        for twin in running:
            twin.stop()


@main.group()
def hcall() -> None:
    """Hcall-level cases: their reproducers, and the spec's clauses they cover."""


@hcall.command("coverage")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
                default=Path("reports/latest"))
def hcall_coverage(run_dir: Path) -> None:
    """The spec's clauses (kvm-nested.rst) against the targets of a run (default: the
    latest): conforming, deviating (a known deviation), differing, not run there, or
    checked by no row (with the reason)."""
    path = run_dir / journal.JOURNAL
    if not path.is_file():
        raise click.ClickException(f"{run_dir}: no {journal.JOURNAL} (not a run directory)")
    cov = coverage.coverage(journal.read(path))
    if not cov.targets:
        raise click.ClickException(f"{run_dir}: the run has no hcall case")
    click.echo(coverage.render(cov))


def _seconds(text: str) -> float:
    """'90s', '10m', '1h' or a number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: a duration such as 90s, 10m or 1h") from None


@hcall.command("campaign")
@click.option("--host", "host_name", required=True, help="The inventory's host to search.")
@click.option("--api", type=click.Choice([a.value for a in API]), required=True)
@click.option("--budget", default="10m", show_default=True,
              help="Time spent running programs (minimizing excluded): 90s, 10m, 1h.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The same seed gives the same programs.")
@click.option("--qemu", default=None, help="The L0 QEMU binary instead of the host's "
              "(e.g. one built with AddressSanitizer: powernest lab qemu --asan); its "
              "firmware from the host's qemu_data_dir, else /usr/share/qemu.")
@click.option("--programs", "max_programs", type=int, default=None,
              help="Stop after this many programs, even within the budget.")
@click.option("--no-baseline", is_flag=True, help="Do not first run the table's rows that "
              "may crash the L0 (then a crash cannot be told new).")
@click.option("--inventory", "inventory_file", type=click.Path(path_type=Path),
              default=Path("hosts.yaml"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="The campaign's directory (default: reports/campaigns/HOST-API-SEED-TIME).")
def hcall_campaign(host_name: str, api: str, budget: str, seed: int, qemu: str | None,
                   max_programs: int | None, no_baseline: bool, inventory_file: Path,
                   out: Path | None) -> None:
    """Search an L0's nested API for crashes with mutated hcall programs; each crash
    key is minimized into a reproducer for `powernest hcall replay`."""
    seconds = _seconds(budget)
    try:
        (host,) = load_inventory(inventory_file).select([host_name])
    except InventoryError as exc:
        raise click.ClickException(str(exc)) from None
    if reason := kind_of(host).lacks(Ability.CRASHES_L0, host):
        raise click.ClickException(f"{host.name}: a campaign crashes L0s on purpose; {reason}")
    if qemu is not None:   # a QEMU built here has no firmware of its own: the machine's
        host = host.model_copy(update={"qemu": qemu, "qemu_data_dir": host.qemu_data_dir
                                       or qemu_build.DATA_DIR})
    run_id = f"campaign-{secrets.token_hex(2)}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (out or Path("reports") / "campaigns" / f"{host.name}-{api}-{seed}-{stamp}").resolve()
    target = Target(host, API(api))
    try:
        lab = build_lab(log=click.echo)
        session = HostSession.open(host, run_id, lease_timeout=5)
    except PowernestError as exc:
        raise click.ClickException(str(exc)) from None
    pool = GuestPool(run_id, out / "consoles", lab, lambda _: session)
    runner = HcallRunner(pool, lab.hcall_modules, out,
                         build=lambda release: hcall_module_for(release, log=click.echo))
    l0 = session.l0.description + (f", {qemu}" if qemu else "")
    campaign = Campaign(pool, target, lambda l1: driver.install(l1, runner.module_for(l1, target)),
                        out, seed, l0, log=click.echo)
    click.echo(f"campaign: {host.name}/{api} under {l0}, seed {seed}, "
               f"budget {seconds:.0f} s, in {out}")
    try:
        summary = campaign.run(seconds, max_programs, baseline=not no_baseline)
    except PowernestError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        pool.close()
        session.close()
    click.echo(summary.render())


@hcall.command("replay")
@click.argument("script", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--cpu", type=click.Choice(CPU_MODELS), default="power10", show_default=True,
              help="The L1's CPU model.")
@click.option("--qemu", default="qemu-system-ppc64", show_default=True,
              help="The L0 QEMU binary (e.g. your own build).")
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=Path("replays"),
              show_default=True, help="Where the L1's console log goes.")
def hcall_replay(script: Path, cpu: str, qemu: str, workdir: Path) -> None:
    """Run a reproducer SCRIPT (written beside a run's logs) in a fresh L1 under a
    local QEMU TCG L0 offering the script's API.  Exit status: 0 when the script ran
    to its end, 2 when the L0 died (its message is printed)."""
    try:
        done = replay.replay(script, build_lab(log=click.echo), workdir.resolve(), cpu, qemu,
                             log=click.echo)
    except PowernestError as exc:
        raise click.ClickException(str(exc)) from None
    for line in done.output.splitlines():
        if line.startswith(("PNSTEP", "PNBEGIN", "PNEND")):
            click.echo(line)
    click.echo(f"replay: {done.summary}; console log {done.console_log}")
    sys.exit(2 if done.l0_death else 0)


@main.group()
def inventory() -> None:
    """Host inventories (hosts.yaml)."""


@inventory.command("check")
@click.argument("file", type=click.Path(path_type=Path), default=Path("hosts.yaml"))
def inventory_check(file: Path) -> None:
    """Validate an inventory and list its hosts; exit 1 naming what is wrong."""
    try:
        inv = load_inventory(file)
    except InventoryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for host in inv.hosts:
        where = f"ssh {host.ssh.host}:{host.ssh.port}" if host.ssh else "local"
        apis = ",".join(a.value for a in kind_of(host).apis(host))
        click.echo(f"{host.name:20} {host.kind.value:8} {host.cpu:8} {apis:22} {where}")


@inventory.command("xdist-args")
@click.argument("file", type=click.Path(path_type=Path), default=Path("hosts.yaml"))
@click.option("--hosts", default="", help="Comma-separated host names (default: all).")
@click.option("--shard", "shard_spec", default="", metavar="K/N",
              help="Only the hosts shard K of N drives (as pytest's --shard).")
def inventory_xdist_args(file: Path, hosts: str, shard_spec: str) -> None:
    """Print the pytest-xdist options that run the hosts side by side.

    One worker per group of cases that can run side by side, at most one per CPU
    core (`scheduling.workers`); nothing for one group, so such a run stays a plain
    pytest run.  The groups go to the workers in the order of the collection,
    the longest first (`collection.pytest_collection_modifyitems`).
    """
    try:
        selected = shard.hosts_of(load_inventory(file).select([n for n in hosts.split(",") if n]),
                                  shard.parse(shard_spec))
    except InventoryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    count = scheduling.workers(selected)
    if count > 1:
        click.echo(f"-n {count} --dist loadgroup --no-loadscope-reorder")


@main.group()
def report() -> None:
    """Reports: rebuild a run's JUnit, merge shards, build the dashboard.

    Every run writes reports/<run-id>/ (results.jsonl, junit.xml, consoles/)
    and points reports/latest at it; the dashboard is rebuilt when a run ends.
    """


@report.command("rebuild")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
                default=Path("reports/latest"))
def report_rebuild(run_dir: Path) -> None:
    """Rebuild RUN_DIR/junit.xml from RUN_DIR/results.jsonl.

    For a run whose controller died before pytest wrote its report: every
    finished case is kept, and a case that was running is an error with the
    reason "run interrupted", its console logs still attached.
    """
    path = run_dir / journal.JOURNAL
    if not path.exists():
        raise click.ClickException(f"{path}: no results journal in this run directory")
    run = journal.read(path)
    out = junit.write(run, run_dir / "junit.xml", hostname=socket.gethostname())
    interrupted = sum(c.outcome == "interrupted" for c in run.cases.values())
    click.echo(f"{out}: {len(run.cases)} cases, {interrupted} interrupted")


@report.command("check")
@click.argument("junit_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=Path("reports/latest/junit.xml"))
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), show_default=True, help="The CI job's workspace.")
def report_check(junit_file: Path, workspace: Path) -> None:
    """Say what Jenkins or GitLab would miss in JUNIT_FILE for a job in WORKSPACE.

    Attachments that are no file there (or lie outside it), results whose text
    does not start with their reason, timestamps without a UTC offset; exit 1
    if there is any.
    """
    problems = junit.check_ci(junit_file, workspace)
    for problem in problems:
        click.echo(problem)
    click.echo(f"{junit_file}: {len(problems)} problems for a CI workspace at {workspace}")
    sys.exit(1 if problems else 0)


@report.command("merge")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--run-id", default="",
              help="The run to take from each shard directory (default: its newest).")
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True,
              help="The reports directory the merged run and the dashboard go to.")
@click.option("--attachments-base", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), show_default=True,
              help="junit.xml's attachment paths are relative to it (the CI workspace).")
@click.option("--junit-strict", is_flag=True,
              help="junit.xml valid against Jenkins' junit-10.xsd (as pytest's option).")
def report_merge(paths: tuple[Path, ...], run_id: str, output: Path, attachments_base: Path,
                 junit_strict: bool) -> None:
    """Join the shards of one run into OUTPUT/<run-id>/ and build its dashboard.

    PATHS are shard directories (each the --reports of one CI job) or run
    directories.  From a shard directory the merge takes the run --run-id,
    else its newest.  The merged run reads like one controller's (journal,
    junit.xml, the cases' logs) and OUTPUT/latest points at it.  A case seen
    in two shards with two outcomes is an error in the merged report and
    makes the exit status 1, as does a shard directory without the run or
    a shard K/N (--shard) that none of the runs is:

    \b
        pytest suites --shard 1/2 --run-id 42 --reports reports/shard-1   # job 1
        pytest suites --shard 2/2 --run-id 42 --reports reports/shard-2   # job 2
        powernest report merge reports/shard-* --run-id 42                # last job
    """
    run_dirs, problems = [], []
    for path in paths:
        try:
            run_dirs.append(merge.pick(path, run_id))
        except merge.MergeError as exc:
            problems.append(f"{exc}: left out")
    try:
        merged = merge.merge(run_dirs, output, run_id, base=attachments_base.resolve(),
                             strict=junit_strict)
    except merge.MergeError as exc:
        raise click.ClickException("; ".join([*problems, str(exc)])) from None
    for part in merged.shards:
        click.echo(f"shard {part.run_dir}: run {part.run.run_id}, {len(part.run.cases)} "
                   f"cases, hosts {', '.join(part.run.info.get('hosts', [])) or '-'}")
    for line in merged.warnings:
        click.echo(f"warning: {line}", err=True)
    if merged.repeated:
        click.echo(f"warning: {len(merged.repeated)} cases ran in several shards with one "
                   f"outcome, kept once (e.g. {merged.repeated[0]}): do the shards overlap?",
                   err=True)
    problems += [f"{c.name}: two outcomes: {c.said}" for c in merged.conflicts]
    problems += [f"shard {spec}: none of the runs merged" for spec in merged.missing]
    outcomes = Counter(c.outcome for c in merged.run.cases.values())
    click.echo(f"{merged.run_dir}: {len(merged.run.cases)} cases from {len(merged.shards)} "
               f"shards ({', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))})")
    try:
        click.echo(f"dashboard: {dashboard.build(output, merged.run_dir)}")
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    for line in problems:
        click.echo(f"error: {line}", err=True)
    if problems:
        sys.exit(1)


@report.command("dashboard")
@click.argument("reports_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
                default=Path("reports"))
@click.option("--run", "run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="The run to show (default: REPORTS_DIR/latest).")
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs the trend chart shows.")
def report_dashboard(reports_dir: Path, run_dir: Path | None, last: int) -> None:
    """Write REPORTS_DIR/index.html, a page to open in a browser (no network needed).

    It shows the run (hosts, L0 versions, kernels, counts), a matrix of tests by
    host and API coloured by outcome, the failures with links to their console
    logs, and the trend of the last runs. Each build also records the run's
    counts in REPORTS_DIR/history/<run-id>.json, which the trend is drawn from.
    Runs rebuild it when they end; run this after `powernest report rebuild`
    or to look at an older run with --run.
    """
    try:
        page = dashboard.build(reports_dir, run_dir, last=last)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"dashboard: {page}")
