"""Boot milestones and their learnt bounds (`powernest.bootwatch`): the bounds from
recorded boots, and on a real L1 an L2 that never prints failing at its first
milestone, its target given up after two such stalls."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from local_pool import local_pool
from powernest import bootwatch
from powernest.bootwatch import BootStalled, BootTimes, Milestone
from powernest.lab import LabImages

MILESTONES = (Milestone("first output", r"\S"), Milestone("banner", "READY"))
KIND = "h|QEMU 10.0.2 (TCG)|nested-hv|l2|smp1"


def test_unlearnt_steps_take_a_share_of_the_boot_timeout() -> None:
    steps = BootTimes().plan(KIND, MILESTONES, 240.0)
    assert [s.bound for s in steps] == [60.0, 60.0]
    assert "not yet learnt" in steps[0].basis


def test_learnt_bounds_are_a_multiple_of_the_longest_with_a_floor() -> None:
    times = BootTimes()
    for first in (3.0, 3.4, 2.8):
        times.record(KIND, {"first output": first, "banner": 1.4})
    first, banner = times.plan(KIND, MILESTONES, 240.0)
    assert first.bound == pytest.approx(bootwatch.FACTOR * 3.4)
    assert banner.bound == bootwatch.FLOOR
    assert "3.4 s" in first.basis
    assert times.plan(KIND, MILESTONES, 10.0)[0].bound == 10.0   # never past the timeout
    assert times.plan("other|kind", MILESTONES, 240.0)[0].bound == 60.0


def test_only_the_last_boots_count() -> None:
    times = BootTimes()
    times.record(KIND, {"first output": 100.0})
    for _ in range(bootwatch.KEEP):
        times.record(KIND, {"first output": 1.0})
    assert times.plan(KIND, MILESTONES, 240.0)[0].bound == bootwatch.FLOOR


def _record(path: Path, n: int) -> None:
    times = BootTimes(path)
    for _ in range(n):
        times.record(KIND, {"first output": 1.0})


def test_workers_share_the_file_without_losing_a_boot(tmp_path: Path) -> None:
    path = tmp_path / "boot-times.json"
    workers = [multiprocessing.Process(target=_record, args=(path, 8)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(json.loads(path.read_text())[f"{KIND}|first output"]) == 16
    assert BootTimes(path).plan(KIND, MILESTONES, 240.0)[0].bound == bootwatch.FLOOR


def test_a_silent_l2_stalls_at_its_first_milestone_then_its_target_gives_up(
        tmp_path: Path, lab: LabImages, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real L1; the L2's QEMU starts with its vCPUs stopped (-S), so it never prints."""
    monkeypatch.setattr(bootwatch, "FLOOR", 2.0)
    with local_pool("bootwatch", "bootwatch-p9", "power9", tmp_path / "consoles",
                    lab) as (pool, target):
        l1 = pool.l1_with_kvm(target)
        for _ in range(bootwatch.LEARNT_AFTER):   # learnt: the first line within 0.4 s
            pool.boot_times.record(pool.boot_kind(target, "l2"),
                                   {"first output": 0.4, "banner": 0.4, "prompt": 0.1})
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(BootStalled, match="stopped after its QEMU started: no first "
                                                  "output within 2 s") as stall:
                pool.l2(l1, target, extra=("-S",))
            assert stall.value.milestone == "first output"
            assert time.monotonic() - started < 15
            running = l1.run(["sh", "-c", "ps | grep -c '[q]emu-system-ppc64 -name l2'"])
            assert running.stdout.strip() == "0", "the stalled L2's QEMU still runs"
        started = time.monotonic()
        with pytest.raises(BootStalled, match="not started: the last 2 L2 boots"):
            pool.l2(l1, target)
        assert time.monotonic() - started < 1
