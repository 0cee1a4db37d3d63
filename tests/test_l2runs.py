"""L2 runs timed in the L1 kernel (`powernest.l2runs`): the histogram's text, and a real L1."""

from __future__ import annotations

from pathlib import Path

from local_pool import local_pool
from powernest.l2runs import INSTANCE, L2Runs, longest
from powernest.lab import LabImages

# kvm_guest_exit's hist file on a two-CPU L1 (Debian 6.12), its first CPU's from a real L1
HIST = """\
# event histogram
#
# trigger info: hist:keys=common_cpu:vals=hitcount:pn_run=common_timestamp.usecs-$pn_entered:\
sort=hitcount:size=2048:clock=global:onmax($pn_run).save(vcpu_id,trap,pc,msr) [active]
#

{ common_cpu:          0 } hitcount:     525078
\tmax:      13549  vcpu_id:          0  trap:       3584  pc: 13835058055286996508  msr: \
9223372036888330291
{ common_cpu:          1 } hitcount:         22
\tmax:    2104117  vcpu_id:          1  trap:       2432  pc: 13835058055282166016  msr: \
9223372036854779905

Totals:
    Hits: 525100
    Entries: 2
    Dropped: 0
"""


def test_the_longest_run_of_all_cpus_and_its_exit() -> None:
    run = longest(HIST)
    assert run is not None
    assert run.seconds == 2.104117 and run.runs == 525100
    assert run.exit == "VCPU 1: trap=0x980 pc=0xc000000000000900 msr=0x8000000000001001"
    assert str(run).startswith("2.104 s (the longest of 525100 runs), ended by: VCPU 1")


def test_no_run_ended() -> None:
    assert longest(HIST.split("{")[0]) is None


def test_a_real_l1_times_its_l2s_runs(tmp_path: Path, lab: LabImages) -> None:
    """The kernel takes the triggers (a stale instance cleared first), every run of an L2's
    boot is counted, and the instance is gone after."""
    with local_pool("l2runs", "l2runs-p9", "power9", tmp_path / "consoles", lab) as (pool,
                                                                                   target):
        l1 = pool.l1_with_kvm(target)
        L2Runs(l1).__enter__()   # left behind, as by a run that never read it
        runs = L2Runs(l1)
        with runs:
            pool.stop(pool.l2(l1, target))
        assert runs.untraced == ""
        assert runs.longest is not None and runs.longest.runs > 1000, runs.longest
        assert 0 < runs.longest.seconds < 10, runs.longest
        assert runs.longest.exit.startswith("VCPU 0: trap=0x")
        assert l1.run(["test", "-e", INSTANCE]).ok is False, "the trace instance stayed"
