"""Where a run's time went: each case records its seconds per phase, the dashboard and
`make bench` add them up by phase, suite and target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import html

from powernest import timing
from powernest.lab import LabImages
from powernest.reporting import dashboard, journal, profile
from runs import green_run

REPO = Path(__file__).resolve().parents[1]


def test_a_phase_inside_another_counts_for_the_outer_one() -> None:
    timing.reset()
    with timing.phase(timing.KEXEC), timing.phase(timing.L1_BOOTED):
        pass
    with timing.phase(timing.L2_BOOT):
        pass
    assert list(timing.spent()) == [timing.L2_BOOT, timing.KEXEC]


def _journal(run_dir: Path) -> None:
    path = run_dir / journal.JOURNAL
    run_dir.mkdir(parents=True)
    (run_dir.parent / "latest").symlink_to(run_dir.name)
    journal.append(path, "run", run_id="r1", hosts=[], started="2026-01-01T06:00:00")
    for nodeid, suite, seconds, spent in [
            ("suites/test_l2.py::test_l2_shell_answers[h-nested-papr]", "h/nested-papr", 10.0,
             {timing.L1_RESTORED: 1.0, timing.L2_BOOT: 6.0}),
            ("suites/test_kexec.py::test_kexec[h-nested-hv-a]", "h/nested-hv", 20.0,
             {timing.L1_BOOTED: 4.0, timing.KEXEC: 12.0}),
            ("suites/test_l2.py::test_l2_runs_under_kvm[h-nested-hv]", "h/nested-hv", 2.0, {})]:
        journal.append(path, "start", nodeid=nodeid, name=nodeid.split("::")[1],
                       classname="x", suite=suite, properties={})
        journal.append(path, "end", nodeid=nodeid, outcome="passed", duration=seconds,
                       properties={"phases": json.dumps(spent)} if spent else {})


def test_a_run_is_profiled_by_phase_suite_and_target(tmp_path: Path) -> None:
    _journal(tmp_path / "reports" / "r1")
    run = journal.read(tmp_path / "reports" / "r1" / journal.JOURNAL)
    p = profile.profile(run)
    assert p.total == 32.0
    assert p.by_phase == {timing.L1_RESTORED: 1.0, timing.L1_BOOTED: 4.0, timing.L2_BOOT: 6.0,
                          timing.KEXEC: 12.0, timing.CHECKS: 9.0}
    assert p.by_suite == {"test_kexec": 20.0, "test_l2": 12.0}
    assert p.by_target == {"h/nested-hv": 22.0, "h/nested-papr": 10.0}
    assert [s.seconds for s in p.slowest] == [20.0, 10.0, 2.0]
    page = html.parse(str(dashboard.build(tmp_path / "reports"))).getroot()
    (section,) = page.xpath(".//section[@id='time']")
    rows = {r.get("data-phase"): r.xpath("./td")[1].text
            for r in section.xpath(".//tr[@data-phase]")}
    assert rows == {"L1 restored": "1.0", "L1 booted": "4.0", "L2 boot": "6.0",
                    "kexec": "12.0", "checks": "9.0"}
    printed = subprocess.run([sys.executable, str(REPO / "bench" / "time_profile.py"),
                              str(tmp_path / "reports")], capture_output=True, text=True,
                             check=True).stdout
    assert "kexec" in printed and "12.0 s" in printed and "test_kexec" in printed


@pytest.mark.usefixtures("lab")
def test_a_real_case_records_its_l1_and_l2_phases(tmp_path: Path, lab: LabImages) -> None:
    inventory = "hosts:\n  - {name: p10-local, kind: tcg, cpu: power10, apis: [nested-papr]}\n"
    run, _ = green_run(tmp_path, inventory, "-k", "test_l2_shell_answers")
    (case,) = journal.read(run / journal.JOURNAL).cases.values()
    spent = json.loads(case.properties["phases"])
    assert set(spent) >= {timing.L1_BOOTED, timing.L2_BOOT}, spent
    assert 0 < sum(spent.values()) < case.duration
