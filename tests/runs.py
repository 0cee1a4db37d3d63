"""Running the conformance suites in a child pytest and reading back its JUnit."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from junit_xsd import validate

REPO = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


def suites(tmp_path: Path, inventory: str, *args: str, run_id: str = "e2e",
           timeout: float = 900) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the suites against `inventory`; return the process and the run directory."""
    (tmp_path / "hosts.yaml").write_text(inventory)
    done = subprocess.run(
        [*PYTEST, str(REPO / "suites"), "--inventory", str(tmp_path / "hosts.yaml"),
         "--reports", str(tmp_path / "reports"), "--run-id", run_id, "-q", *args],
        capture_output=True, text=True, cwd=REPO, timeout=timeout)
    return done, tmp_path / "reports" / run_id


def green_run(tmp_path: Path, inventory: str, *args: str,
              run_id: str = "e2e") -> tuple[Path, dict[str, str]]:
    """`suites()` that must exit 0 with a valid junit.xml; its run directory and outcomes."""
    done, run = suites(tmp_path, inventory, *args, run_id=run_id)
    assert done.returncode == 0, done.stdout[-3000:]
    validate(run / "junit.xml")
    return run, outcomes(run / "junit.xml")


def outcomes(junit: Path) -> dict[str, str]:
    """Test name -> passed / failure / error / skipped, from a junit.xml."""
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        verdict = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")),
                       "passed")
        found[case.get("name", "")] = verdict
    return found


def suite_properties(junit: Path, suite: str) -> dict[str, str]:
    for el in ET.parse(junit).iter("testsuite"):
        if el.get("name") == suite:
            return {p.get("name", ""): p.get("value", "")
                    for p in el.findall("properties/property")}
    raise AssertionError(f"no testsuite {suite} in {junit}")


def qemu_running(tag: str) -> list[str]:
    """The QEMU processes of guests whose name starts with `pn.<tag>`."""
    done = subprocess.run(["pgrep", "-af", f"qemu-system-ppc64 -name pn.{tag}"],
                          capture_output=True, text=True)
    return done.stdout.splitlines()
