"""How fast and how precisely the suite turns red on an L0 that loses an L2 register.

    .venv/bin/python bench/broken_l0.py [--fault ctr] [--as-host NAME] [-- PYTEST_ARGS]

Builds the QEMU of this machine (`qemu-system-ppc64 --version`: Debian's source
package, fetched from the machine's own Debian archive) for ppc64-softmmu with
one fault seeded in the API v1 exit path (`FAULTS`: a register of the L2 that
spapr_exit_nested_hv no longer copies back to the L1), then runs the hcall
suite's behavioural rows (default `-k l2-exit`, stopping at the first failure)
against it on one emulated power10 host, and prints the time to the first red
and what the failure says.  The build is cached under $POWERNEST_CACHE/qemu-builds
(`powernest.lab.qemu_build`: about 4 minutes on 2 cores the first time; it needs root for
the build packages).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from powernest.lab import qemu_build
from powernest.lab.errors import LabBuildError

REPO = Path(__file__).resolve().parents[1]
SOURCE_FILE = "hw/ppc/spapr_nested.c"
# fault -> (the line of spapr_exit_nested_hv it removes, what it loses)
FAULTS = {
    "ctr": ("    regs->ctr = l2_state.ctr;\n", "the L2's CTR at each API v1 exit"),
    "lr": ("    regs->link = l2_state.lr;\n", "the L2's LR at each API v1 exit"),
}


def log(text: str) -> None:
    print(f"broken-l0: {text}", flush=True)


def build(fault: str) -> Path:
    """qemu-system-ppc64 with `fault` seeded, built once and cached."""
    line, _ = FAULTS[fault]

    def seed(tree: Path) -> None:
        source = tree / SOURCE_FILE
        text = source.read_text()
        if line not in text:
            sys.exit(f"broken-l0: {SOURCE_FILE} has no line {line.strip()!r}")
        source.write_text(text.replace(line, "    /* fault seeded by powernest */\n", 1))
        log(f"seeded: {SOURCE_FILE} no longer runs {line.strip()!r}")

    try:
        return qemu_build.build(f"fault-{fault}", seed=seed, log=log)
    except LabBuildError as exc:
        sys.exit(f"broken-l0: {exc}")


def first_red(junit: Path) -> tuple[str, float, str] | None:
    """The first failed (or errored) case of a run: its name, the run's time up to its
    end, its message."""
    elapsed = 0.0
    for case in ET.parse(junit).iter("testcase"):
        elapsed += float(case.get("time", 0))
        red = case.find("failure")
        red = red if red is not None else case.find("error")
        if red is not None:
            return case.get("name", "?"), elapsed, red.get("message", "")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=sorted(FAULTS), default="ctr")
    parser.add_argument("--as-host", metavar="NAME",
                        help="name the broken L0's host NAME (default: broken-FAULT), e.g. "
                             "p10-emulated to wait by the boot bounds that host's runs taught")
    parser.add_argument("pytest_args", nargs="*", default=["-k", "l2-exit", "-x"])
    args = parser.parse_args()
    binary = build(args.fault)
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "hosts.yaml"
        name = args.as_host or f"broken-{args.fault}"
        inventory.write_text(f"hosts:\n  - name: {name}\n    kind: tcg\n"
                             f"    cpu: power10\n    qemu: {binary}\n"
                             f"    qemu_data_dir: {qemu_build.DATA_DIR}\n")
        reports = Path(tmp) / "reports"
        log(f"running {' '.join(args.pytest_args)} against it: {FAULTS[args.fault][1]} lost")
        t0 = time.monotonic()
        subprocess.run([str(REPO / ".venv" / "bin" / "pytest"), str(REPO / "suites"),
                        "--inventory", str(inventory), "--reports", str(reports), "-q",
                        "-p", "no:cacheprovider", *args.pytest_args], cwd=REPO)
        wall = time.monotonic() - t0
        junit = next(reports.glob("*/junit.xml"), None)
        red = first_red(junit) if junit else None
        if red is None:
            log(f"no red in {wall:.0f} s: the fault went unseen")
            return
        name, elapsed, message = red
        log(f"first red after {elapsed:.1f} s of cases ({wall:.0f} s wall, L0 start included): "
            f"{name}")
        log(f"it says: {message[:600]}")
        shutil.rmtree(reports, ignore_errors=True)


if __name__ == "__main__":
    main()
