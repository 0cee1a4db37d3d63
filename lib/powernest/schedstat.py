"""How long an L0 QEMU waited for a CPU on its host: starvation, measured.

A guest's watchdog counts in its L0's clock; when the QEMU process behind it
waits on the host's run queue (the host is busy), the guest sees a lockup or a
stall that is no defect of what runs in it.  `start()` runs a sampler on the
host beside the QEMU: once a second it appends the time and each thread's
time on a CPU and waiting for one (the first two fields of
`/proc/<pid>/task/<tid>/schedstat`) to a file, until QEMU exits.
`worst_wait()` reads that file back: within any window of the case, the wait
of the thread that wanted a CPU most (ran and waited longest: a vCPU, under
TCG; QEMU's main loop waits often but briefly, and a guest does not notice).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from powernest.shell import Shell

INTERVAL = 1.0
# A soft lockup fires after 2 x watchdog_thresh (20 s) without the watchdog thread; an
# RCU stall after 21 s: a window of 30 s holds the starvation behind either.
WINDOW = 30.0
# A vCPU that waited half a window for a CPU was starved: enough to explain a guest's
# lockup or stall, which fire after some 20 s without progress.
STARVED = 15.0

_SAMPLER = r"""
while [ ! -s "$1" ]; do sleep 0.2; done
pid=$(cat "$1")
while kill -0 "$pid" 2>/dev/null; do
    line=$(date +%s.%N)
    for t in /proc/"$pid"/task/*; do
        read -r run wait _ < "$t/schedstat" 2>/dev/null && line="$line ${t##*/}:$run:$wait"
    done
    echo "$line"
    sleep __INTERVAL__
done
""".replace("__INTERVAL__", f"{INTERVAL:g}")


def start(shell: Shell, pidfile: str, samples: str) -> None:
    """Sample the run-queue waits of the QEMU that writes `pidfile` into `samples`."""
    script = f"nohup sh -c {shlex.quote(_SAMPLER)} sh \"$1\" >> \"$2\" 2>/dev/null < /dev/null &"
    shell.run(["sh", "-c", script, "sh", pidfile, samples], timeout=30)


@dataclass(frozen=True)
class Wait:
    """The longest run-queue wait of one QEMU thread within a window."""

    seconds: float
    window: float
    ending: float      # when the window ended (epoch seconds)

    @property
    def starved(self) -> bool:
        return self.seconds >= STARVED

    def describe(self) -> str:
        return (f"the L0 QEMU's busiest thread waited {self.seconds:.1f} s for a CPU in the "
                f"{self.window:.0f} s up to {self.ending:.0f} (host run queue, schedstat)")


Sample = tuple[float, dict[str, tuple[int, int]]]


def parse(text: str) -> list[Sample]:
    """(time, {thread id: (cumulative ns on a CPU, cumulative ns waiting)}) per line."""
    samples = []
    for line in text.splitlines():
        fields = line.split()
        try:
            stamp = float(fields[0])
            threads = {}
            for field in fields[1:]:
                tid, run, wait = field.split(":")
                threads[tid] = (int(run), int(wait))
        except (ValueError, IndexError):
            continue   # a line cut short as QEMU exited
        samples.append((stamp, threads))
    return samples


def read(shell: Shell, samples: str, seconds: float) -> str:
    """The sample lines of the last `seconds` (and one window before them)."""
    lines = int((seconds + WINDOW) / INTERVAL) + 5
    return shell.run(["tail", "-n", str(lines), samples], timeout=30).stdout


def worst_wait(text: str, seconds: float, window: float = WINDOW) -> Wait | None:
    """The longest wait, within any `window` seconds of the last `seconds` the samples
    cover (timed by the host's clock, whatever the controller's says), of the thread
    that wanted a CPU most in that window."""
    every = parse(text)
    if not every:
        return None
    since = every[-1][0] - seconds
    samples = [s for s in every if s[0] >= since - window]
    worst: Wait | None = None
    for i, (end, threads) in enumerate(samples):
        if end < since:
            continue
        start = next((s for s in samples[:i + 1] if s[0] >= end - window), None)
        if start is None:
            continue
        wanted = {tid: (run - start[1].get(tid, (run, wait))[0],
                        wait - start[1].get(tid, (run, wait))[1])
                  for tid, (run, wait) in threads.items()}
        waited = max(wanted.values(), key=sum, default=(0, 0))[1] / 1e9
        if worst is None or waited > worst.seconds:
            worst = Wait(waited, end - start[0], end)
    return worst
