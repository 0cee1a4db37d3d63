"""One guest incident, one red case: a real L1 whose kernel logs a soft lockup during a
case fails that case alone, and the next case on its target runs on a fresh L1.

The cases below run in a child pytest, in order, on one target of the emulated lab;
they put the lockup into their shared L1's kernel log themselves, through /dev/kmsg.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from powernest.lab import LabImages
from powernest.plugin.shared import RETIRED
from powernest.reporting import journal
from runs import PYTEST, qemu_running

CONFTEST = '''
from powernest.plugin import PLUGINS
from powernest.plugin.run import start_run

pytest_plugins = PLUGINS


def pytest_configure(config):
    start_run(config)
'''

CASES = '''
import pytest

from powernest.nested import API, Deviation

LOCKUP = "watchdog: BUG: soft lockup - CPU#0 stuck for 25s! [pn-selftest:1]"
DAMAGING = Deviation("selftest-damaging", API.V1, (0, 0), None,
                     "a known deviation that leaves its L1 damaged", None, "selftest",
                     damages_l1=True)


def kmsg(l1, line, level):
    l1.run(["sh", "-c", 'echo "<$2>$1" > /dev/kmsg', "sh", line, str(level)], check=True)


@pytest.fixture(autouse=True)
def name_the_l1(l1, record_property):
    record_property("l1_name", l1.name)


def test_1_lockup_in_the_kernel_log(l1):
    kmsg(l1, LOCKUP, 7)   # a debug line: in the kernel log, not on the console


def test_2_next_case(l1):
    assert l1.run(["true"]).ok


def test_3_next_case_again(l1):
    assert l1.run(["true"]).ok


@pytest.mark.deviation(DAMAGING)
def test_4_a_damaging_deviation(l1):
    assert False, "the deviation, met"


def test_5_after_the_deviation(l1):
    assert l1.run(["true"]).ok


def test_6_lockup_on_the_console(l1):
    kmsg(l1, LOCKUP, 0)   # printed on the console while the command runs


def test_7_after_the_console_lockup(l1):
    assert l1.run(["true"]).ok
'''


def test_an_l1_lockup_makes_one_red_case_and_the_next_case_gets_a_fresh_l1(
        tmp_path: Path, lab: LabImages) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_incident.py").write_text(CASES)
    (tmp_path / "hosts.yaml").write_text(
        "hosts:\n  - {name: p9-incident, kind: tcg, cpu: power9, apis: [nested-hv]}\n")
    done = subprocess.run(
        [*PYTEST, str(suite), "--inventory", str(tmp_path / "hosts.yaml"),
         "--reports", str(tmp_path / "reports"), "--run-id", "e2e-incident", "-q"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    run = journal.read(tmp_path / "reports" / "e2e-incident" / journal.JOURNAL)
    cases = {c.name.split("[")[0]: c for c in run.cases.values()}
    outcomes = {name: c.outcome for name, c in cases.items()}
    assert outcomes == {
        "test_1_lockup_in_the_kernel_log": "failed", "test_2_next_case": "passed",
        "test_3_next_case_again": "passed", "test_4_a_damaging_deviation": "xfailed",
        "test_5_after_the_deviation": "passed", "test_6_lockup_on_the_console": "failed",
        "test_7_after_the_console_lockup": "passed"}, done.stdout[-4000:]
    assert done.returncode == 1 and " error" not in done.stdout.splitlines()[-1]

    l1 = {name: c.properties["l1_name"] for name, c in cases.items()}
    assert l1["test_2_next_case"] != l1["test_1_lockup_in_the_kernel_log"]
    assert l1["test_3_next_case_again"] == l1["test_2_next_case"]
    assert l1["test_4_a_damaging_deviation"] == l1["test_3_next_case_again"]
    assert l1["test_5_after_the_deviation"] != l1["test_4_a_damaging_deviation"]
    assert l1["test_7_after_the_console_lockup"] != l1["test_6_lockup_on_the_console"]
    retired = {name for name, c in cases.items() if RETIRED in c.properties}
    assert retired == {"test_1_lockup_in_the_kernel_log", "test_4_a_damaging_deviation",
                       "test_6_lockup_on_the_console"}

    first = cases["test_1_lockup_in_the_kernel_log"]
    assert "kernel logged a soft lockup during this case" in first.message
    assert "l0_cpu_wait_s" in first.properties   # read before its L1 was retired
    assert "stuck for 25s! [pn-selftest:1]" in first.details
    assert first.attachments[0].endswith(".log") and "l1" in first.attachments[0]
    assert "soft lockup" in cases["test_6_lockup_on_the_console"].message
    assert not qemu_running("e2e-incident")
