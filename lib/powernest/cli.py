"""The `powernest` command: build the lab, check an inventory, rebuild reports."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from powernest.inventory import InventoryError, load_inventory
from powernest.lab import LabBuildError, build_lab
from powernest.reporting import journal, junit


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
        apis = ",".join(a.value for a in host.offered_apis)
        click.echo(f"{host.name:20} {host.kind.value:8} {host.cpu:8} {apis:22} {where}")


@inventory.command("xdist-args")
@click.argument("file", type=click.Path(path_type=Path), default=Path("hosts.yaml"))
@click.option("--hosts", default="", help="Comma-separated host names (default: all).")
def inventory_xdist_args(file: Path, hosts: str) -> None:
    """Print the pytest-xdist options that run the hosts side by side (one worker each).

    Prints nothing for a single host, so `make run` stays a plain pytest run.
    """
    try:
        selected = load_inventory(file).select([n for n in hosts.split(",") if n])
    except InventoryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if len(selected) > 1:
        click.echo(f"-n {len(selected)} --dist loadgroup")


@main.group()
def report() -> None:
    """Reports: rebuild JUnit from a run's journal."""


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
