"""Figures of the lab's host handling, measured on this machine and printed.

    .venv/bin/python bench/lab_figures.py [--skip-parallel]

1. boot time of each twin (QEMU start to its SSH server's host key);
2. the time to detect a dead host through an inventory: hung (SIGSTOP: TCP
   accepts, SSH never answers), gone (port closed), and a host that does not
   come back after a kexec;
3. wall time of the same cases on one host, on two hosts one after the
   other, and on two hosts side by side (pytest-xdist, one group per host).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from powernest import twins
from powernest.hosts import HostLost, HostSession
from powernest.inventory import Host, Kind, load_inventory
from powernest.lab import build_lab
from powernest.lease import HostHold
from powernest.shell import ConnectError

REPO = Path(__file__).resolve().parents[1]
CASES = "test_l1_ or test_l2_runs"


def _host(twin: twins.Twin, work: Path, connect_timeout: float) -> Host:
    entry = twin.inventory_entry()
    entry["ssh"]["connect_timeout"] = connect_timeout
    path = work / f"{twin.name}-{connect_timeout:g}.yaml"
    path.write_text(yaml.safe_dump({"hosts": [entry]}))
    return load_inventory(path).hosts[0]


def _open_fails(host: Host) -> float:
    started = time.monotonic()
    try:
        HostSession.open(host, "bench", 5).close()
    except ConnectError:
        return time.monotonic() - started
    raise AssertionError(f"{host.name} answered")


def twin_boots(work: Path, rounds: int) -> None:
    lab = build_lab(log=lambda line: None)
    for kind in (Kind.POWERVM, Kind.KVM):
        seconds = []
        for n in range(rounds):
            twin = twins.start(kind, lab, work / f"{kind.value}-{n}", f"{kind.value}-twin")
            seconds.append(twin.boot_seconds)
            twin.stop()
        print(f"{kind.value} twin boot to SSH: median {statistics.median(seconds):.1f} s "
              f"(min {min(seconds):.1f}, max {max(seconds):.1f}, {rounds} boots)")


def dead_hosts(work: Path) -> None:
    lab = build_lab(log=lambda line: None)
    twin = twins.start(Kind.POWERVM, lab, work / "dead", "dead-twin")
    alive = HostSession.open(_host(twin, work, 10), "bench", 5)
    old_boot = alive.boot_id()
    alive.close()
    pid = twin.console.proc.pid
    os.kill(pid, signal.SIGSTOP)
    for timeout in (1, 3, 10):
        took = _open_fails(_host(twin, work, timeout))
        print(f"hung host (SSH never answers), connect_timeout {timeout:>2} s: "
              f"ConnectError after {took:.2f} s")
    os.kill(pid, signal.SIGCONT)
    twin.stop()
    took = _open_fails(_host(twin, work, 10))
    print(f"gone host (port closed), connect_timeout 10 s: ConnectError after {took:.3f} s")
    host = _host(twin, work, 3)
    session = HostSession(host, alive.shell, alive.l0_qemu, HostHold(host.name, "bench", 10))
    started = time.monotonic()
    try:
        session.wait_for_new_boot(old_boot, timeout=20)
    except HostLost:
        print(f"no new kernel after a kexec, wait 20 s, connect_timeout 3 s: HostLost after "
              f"{time.monotonic() - started:.1f} s")


def _suite_run(work: Path, name: str, hosts: str, parallel: bool) -> float:
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites", "-q",
            "--inventory", "hosts.yaml", "--hosts", hosts, "--reports", str(work / name),
            "-k", CASES]
    if parallel:
        args += ["-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder"]
    started = time.monotonic()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    took = time.monotonic() - started
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    print(f"{name:<28} {took:6.1f} s   {summary}")
    return took


def parallel_hosts(work: Path) -> None:
    print(f"cases: -k '{CASES}' on each host, default inventory")
    one = _suite_run(work, "one host (p9)", "p9-emulated", False)
    serial = _suite_run(work, "two hosts, one after other", "p9-emulated,p10-emulated", False)
    side = _suite_run(work, "two hosts side by side", "p9-emulated,p10-emulated", True)
    print(f"two hosts side by side take {side / one:.2f}x the time of one host "
          f"({serial / side:.2f}x faster than one after the other)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="boots per twin kind")
    parser.add_argument("--skip-parallel", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="powernest-bench-") as tmp:
        work = Path(tmp)
        twin_boots(work, options.rounds)
        dead_hosts(work)
        if not options.skip_parallel:
            parallel_hosts(work)


if __name__ == "__main__":
    main()
