"""How often an L1 soft-locks or stalls around a 2-vCPU L2, per configuration, measured.

    .venv/bin/python bench/smp_l2_lockups.py [--tries-v1 12] [--tries-v2 4] [--jobs 2]
        [--minutes 55] [--out /tmp/lockup-rates] [--only LABEL-PART] [--no-trace] [--table-only]

One try is what the lifecycle suite does to a shared L1 in `test_l2_with_two_vcpus`
and then `test_l2_reboots_from_inside`, on a fresh L1 of its own: an L1 (restored from
its checkpoint; a 2-vCPU one booted, see below) with kvm-hv loaded and its hcalls
traced (as the suite's pool does), an L2 with -smp 2 up to its prompt, stopped; the
hcall trace collected (the suite's teardown); a 1-vCPU L2 rebooted from inside (fails
under v2: nestedv2-idle-l2-spins), stopped; collected again; then the L1's kernel log.
An incident is a soft lockup, RCU stall, hung task, panic or oops in that log, or one
the L1's console showed while a command ran (`GuestCrash`, which ends the try).
Recorded with it: the L2's boot time and its uptime at its banner, the longest L2 run
of that boot (`powernest.l2runs`: 21 s or more where the L0 lost an HDEC), and the worst wait
of the L1's L0 QEMU for a host CPU within any 30 s (`powernest.schedstat`: starvation).

Configurations: p9/p10 (hosts.yaml) x API v1/v2 x an L1 of 1 or 2 vCPUs (2: multi-threaded
TCG, so an L0 may use both host cores; restored from a checkpoint, such an L1 reports
`watchdog: CPU 0 detected hard LOCKUP on other CPUs 1` at once, so it is booted).
`--jobs` tries of one configuration run side by side, as `make run`'s two workers do;
v1 first.  Every try is a JSON line in OUT/tries.jsonl as it ends; the console logs of
tries with an incident stay in OUT/consoles.  The table: tries, incidents by kind,
rate, median L2 boot, median worst L0 wait.
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from powernest.console import GuestCrash, find_failure
from powernest.guests import L1Guest
from powernest.hcalls.trace import HcallTraces
from powernest.hosts import HostSession
from powernest.inventory import load_inventory
from powernest.kinds import Target
from powernest.l2runs import L2Runs
from powernest.lab import LabImages, build_lab
from powernest.nested import API
from powernest.pool import GuestPool
from powernest.qemu import GuestSpec

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("p9-emulated", "p10-emulated")
EXCERPT_LINES = 40


@dataclass(frozen=True)
class Config:
    host: str
    api: API
    l1_smp: int

    @property
    def label(self) -> str:
        return f"{self.host} {self.api.value} L1 -smp {self.l1_smp}"


@dataclass
class SmpPool(GuestPool):
    """A pool whose L1s have `l1_smp` vCPUs (their own checkpoint: -smp is in its key)."""

    l1_smp: int = 1

    def l1_spec(self, target: Target, kernel: str) -> GuestSpec:
        return replace(super().l1_spec(target, kernel), smp=self.l1_smp)


def incident(log: str) -> tuple[str, str]:
    """The first incident in a kernel log: its kind and its lines ("none", "" if none)."""
    if (failure := find_failure(log)) is None:
        return "none", ""
    start = log.rfind("\n", 0, failure[1]) + 1
    return failure[0], "\n".join(log[start:].splitlines()[:EXCERPT_LINES])


class Bench:
    """Runs tries and records them; one per thread at a time, each with its own pool."""

    def __init__(self, out: Path, lab: LabImages, sessions: dict[str, HostSession],
                 run_id: str, deadline: float, trace: bool) -> None:
        self.out, self.lab, self.sessions = out, lab, sessions
        self.run_id, self.deadline, self.trace = run_id, deadline, trace
        self.hosts = {h.name: h for h in load_inventory(REPO / "hosts.yaml").hosts}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def pool(self, config: Config, worker: str, consoles: list[Path] | None = None) -> SmpPool:
        return SmpPool(self.run_id, self.out / "consoles", self.lab,
                       lambda h: self.sessions[h.name], worker=worker, l1_smp=config.l1_smp,
                       on_console=(consoles.append if consoles is not None else lambda p: None))

    def checkpoint(self, config: Config) -> None:
        """One L1 alone first: it makes the checkpoint that the tries side by side restore."""
        if config.l1_smp > 1:
            return
        consoles: list[Path] = []
        pool = self.pool(config, f"c{config.l1_smp}", consoles)
        try:
            pool.stop(pool.l1(Target(self.hosts[config.host], config.api)))
        finally:
            pool.close()
            for path in consoles:
                path.unlink(missing_ok=True)

    def one(self, config: Config) -> dict[str, Any] | None:
        """One try (None once past the deadline); recorded as a JSON line."""
        if time.monotonic() > self.deadline:
            return None
        with self.lock:
            n = next(self.ids)
        target = Target(self.hosts[config.host], config.api)
        consoles: list[Path] = []
        pool = self.pool(config, f"t{n}", consoles)
        traces = HcallTraces()
        if self.trace:
            pool.before_kvm = traces.start
        rec: dict[str, Any] = {"run": self.run_id, "try": n, "config": config.label,
                               "host": config.host, "api": config.api.value,
                               "l1_smp": config.l1_smp,
                               "started": time.strftime("%H:%M:%S"), "kind": "none",
                               "live": "", "l2_crash": "", "reboot": "", "error": ""}
        started = time.monotonic()
        step, l1 = "l1", None
        try:
            l1 = pool.l1_with_kvm(target, booted=config.l1_smp > 1)
            assert isinstance(l1, L1Guest)
            rec.update(l1=l1.name, l1_from=l1.started_from, l1_s=round(l1.boot_seconds, 1))
            step = "smp2-l2"
            runs = L2Runs(l1)
            try:
                with runs:
                    l2 = pool.l2(l1, target, smp=2)
                    rec.update(l2_boot_s=round(l2.boot_seconds, 1),
                               l2_uptime_s=l2.ready_uptime(), l2_cpus=l2.cpus())
                    pool.stop(l2)
            finally:
                rec["longest_run_s"] = runs.longest.seconds if runs.longest else None
            traces.total(l1)
            step = "reboot"
            l2 = pool.l2(l1, target)
            try:
                l2.reboot_from_inside()
                rec["reboot"] = "ok"
            except GuestCrash as exc:
                if str(exc).startswith(l1.name):
                    raise
                rec["reboot"], rec["l2_crash"] = "L2 crash", exc.kind
            except Exception as exc:   # under v2 expected (nestedv2-idle-l2-spins)
                rec["reboot"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:200]
            pool.stop(l2)
            traces.total(l1)
        except GuestCrash as exc:
            if l1 is not None and str(exc).startswith(l1.name):
                rec["live"] = f"{exc.kind} during {step}"
                rec["kind"], rec["excerpt"] = exc.kind, exc.trace[:4000]
            else:
                rec["l2_crash"], rec["error"] = exc.kind, f"L2 {exc.kind} during {step}"
        except Exception as exc:   # recorded; the next try goes on
            rec["error"] = f"{type(exc).__name__} during {step}: {str(exc).splitlines()[0]}"[:300]
        try:
            if isinstance(l1, L1Guest) and l1.alive():   # an L2 of a failed step may still run
                kind, excerpt = incident(l1.case_log())
                if kind != "none":
                    rec["kind"], rec["excerpt"] = kind, excerpt
                wait = l1.l0_wait(time.monotonic() - started + 5)
                rec["l0_wait_s"] = round(wait.seconds, 1) if wait else None
        except Exception as exc:
            rec["error"] += f"; reading the L1: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            pool.close()
        rec["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
        rec["seconds"] = round(time.monotonic() - started, 1)
        rec["first_line"] = rec.get("excerpt", "").split("\n", 1)[0]
        if rec["kind"] == "none" and not rec["l2_crash"]:
            for path in consoles:
                path.unlink(missing_ok=True)
        with self.lock, (self.out / "tries.jsonl").open("a") as jsonl:
            jsonl.write(json.dumps(rec) + "\n")
        print(f"  try {n:3} {config.label:<34} {rec['kind']:<11} L2 {rec.get('l2_boot_s')} s "
              f"wait {rec.get('l0_wait_s')} s {rec['seconds']} s {rec['error'][:80]}", flush=True)
        return rec


def table(records: list[dict[str, Any]]) -> None:
    print(f"{'configuration':<34} {'tries':>5} {'incidents (by kind)':<28} {'rate':>5} "
          f"{'L2 boot':>8} {'L0 wait':>8}  other")
    for label in dict.fromkeys(r["config"] for r in records):
        mine = [r for r in records if r["config"] == label]
        kinds = Counter(r["kind"] for r in mine if r["kind"] != "none")
        shown = ", ".join(f"{k} {n}" for k, n in kinds.most_common()) or "-"
        boots = [r["l2_boot_s"] for r in mine if r.get("l2_boot_s") is not None]
        waits = [r["l0_wait_s"] for r in mine if r.get("l0_wait_s") is not None]
        other = Counter(["L2 " + r["l2_crash"] for r in mine if r["l2_crash"]]
                        + ["error" for r in mine if r["error"]])
        print(f"{label:<34} {len(mine):>5} {shown:<28} {sum(kinds.values()) / len(mine):>5.0%} "
              f"{statistics.median(boots) if boots else float('nan'):>7.1f}s "
              f"{statistics.median(waits) if waits else float('nan'):>7.1f}s  "
              f"{', '.join(f'{k} {n}' for k, n in other.items())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries-v1", type=int, default=12, help="tries per API v1 configuration")
    parser.add_argument("--tries-v2", type=int, default=4, help="tries per API v2 configuration")
    parser.add_argument("--jobs", type=int, default=2, help="tries side by side")
    parser.add_argument("--minutes", type=float, default=55, help="no try starts after this")
    parser.add_argument("--out", type=Path, default=Path("/tmp/lockup-rates"))
    parser.add_argument("--no-trace", action="store_true", help="no hcall tracing in the L1s")
    parser.add_argument("--only", default="", help="configurations whose label contains this")
    parser.add_argument("--table-only", action="store_true", help="the table of OUT/tries.jsonl")
    options = parser.parse_args()
    jsonl = options.out / "tries.jsonl"
    if not options.table_only:
        options.out.mkdir(parents=True, exist_ok=True)
        run_id = f"lockups{secrets.token_hex(3)}"
        hosts = [h for h in load_inventory(REPO / "hosts.yaml").hosts if h.name in HOSTS]
        sessions = {h.name: HostSession.open(h, run_id, 60) for h in hosts}
        bench = Bench(options.out, build_lab(log=lambda line: None), sessions, run_id,
                      time.monotonic() + options.minutes * 60, not options.no_trace)
        try:
            for api, tries in ((API.V1, options.tries_v1), (API.V2, options.tries_v2)):
                for smp in (1, 2):
                    for host in HOSTS:
                        config = Config(host, api, smp)
                        if not tries or options.only not in config.label:
                            continue
                        if time.monotonic() > bench.deadline:
                            break
                        bench.checkpoint(config)
                        with ThreadPoolExecutor(options.jobs) as jobs:
                            list(jobs.map(bench.one, [config] * tries))
        finally:
            for session in sessions.values():
                session.close()
    table([json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()])


if __name__ == "__main__":
    main()
