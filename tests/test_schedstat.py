"""Starvation measured: the sampler beside a real process, and the longest wait in a window."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from powernest import schedstat
from powernest.local import LocalShell


def samples(*rows: tuple[float, dict[str, tuple[float, float]]]) -> str:
    """Sample lines from (time, {tid: (cumulative run, cumulative wait) in seconds})."""
    return "".join(f"{t:.3f} " + " ".join(f"{tid}:{int(r * 1e9)}:{int(w * 1e9)}"
                                          for tid, (r, w) in threads.items()) + "\n"
                   for t, threads in rows)


def test_the_wait_of_the_thread_that_wanted_a_cpu_most() -> None:
    # thread 11 (a vCPU) runs 0.2 s and waits 0.8 s of each second from t=1020 on;
    # thread 10 (a main loop) waits 0.3 s of each second in short bursts, and is not it
    text = samples(*((1000.0 + i, {"10": (0.05 * i, 0.3 * i),
                                   "11": (0.2 * i, 0.8 * max(0, i - 20))}) for i in range(60)))
    wait = schedstat.worst_wait(text, seconds=40)
    assert wait is not None and wait.starved
    assert 23.0 < wait.seconds <= 24.0
    assert wait.window == 30 and 1050 <= wait.ending <= 1059
    assert "busiest thread waited 24.0 s for a CPU in the 30 s" in wait.describe()


def test_a_busy_but_served_thread_is_not_starved() -> None:
    text = samples(*((2000.0 + i, {"7": (0.7 * i, 0.3 * i)}) for i in range(60)))
    wait = schedstat.worst_wait(text, seconds=60)
    assert wait is not None and not wait.starved and round(wait.seconds) == 9


def test_only_the_last_seconds_count() -> None:
    rows = [(3000.0 + i, {"7": (0.1 * i, 0.9 * min(i, 30))}) for i in range(100)]  # early
    assert schedstat.worst_wait(samples(*rows), seconds=20).seconds == 0   # type: ignore[union-attr]


def test_lines_cut_short_and_no_samples() -> None:
    assert schedstat.parse("12.5 1:100:5 2:x\n13.5\n14.5 1:200:7\n") == [
        (13.5, {}), (14.5, {"1": (200, 7)})]
    assert schedstat.worst_wait("", seconds=10) is None


def test_the_sampler_follows_a_real_process_until_it_ends(tmp_path: Path) -> None:
    pidfile, out = tmp_path / "p.pid", tmp_path / "p.sched"
    proc = subprocess.Popen(["sh", "-c", f'echo $$ > {pidfile}; exec sleep 3'])
    schedstat.start(LocalShell(), str(pidfile), str(out))
    proc.wait()
    time.sleep(schedstat.INTERVAL * 1.5)   # the sampler sees the end and stops
    rows = schedstat.parse(out.read_text())
    assert len(rows) >= 2 and all(str(proc.pid) in waits for _, waits in rows)
    size = out.stat().st_size
    time.sleep(schedstat.INTERVAL * 1.5)
    assert out.stat().st_size == size
