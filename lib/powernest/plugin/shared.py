"""A target's shared guests, and one red case per guest incident.

A target's cases share one L1 (and one L2 in it): the `l1` and `l2` fixtures
take them from `SharedGuests`, which starts them for the first case that asks,
and stops each after the last case that uses it in the run's order (a worker
runs its cases in that order, and all of a target's cases run in one worker:
`collection.pytest_collection_modifyitems`).  An idle L2 under API v2 keeps a
host CPU busy (`nested.IDLE_L2_SPINS`), so a fixture must not use a shared guest
in its teardown.

One incident, one red.  As each case that shares an L1 begins, the L1's kernel
log is marked (`L1.begin_case`); once the case has run, the log since the mark
is read.  A panic, an oops, a lockup, a stall or a hung task there
(`console.FAILURES`) is reported on that case, with the log's lines: it fails
the case if nothing else did.  The target's shared guests are then retired as
the case's teardown begins (its report has read how long their L0s waited for a
CPU: `cases.py`), and the next case that shares them gets fresh ones, so an
incident is never read again by a later case.  They are retired as well when
the L1 does not answer that check, when a guest's console failed during the
case (a crash, a timeout, QEMU gone), and when the case met a known deviation
that leaves its L1 damaged (`Deviation.damages_l1`).  A case that retired them
says why in its `shared_guests_retired` property; so does a case whose L1 failed
before it began (the `l1` fixture gives it a fresh one, with a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from powernest.console import ConsoleError, find_failure
from powernest.errors import PowernestError, Unavailable, chain
from powernest.guests import L1, last_words
from powernest.kinds import Target
from powernest.plugin.cases import DEVIATIONS_MET
from powernest.plugin.collection import SHARED_GUESTS, shared_guests_of, target_of

G = TypeVar("G")
Key = tuple[str, str]   # a shared guest: (its fixture's name, its target's id)
RETIRED = "shared_guests_retired"   # the case property: why its target's guests were replaced
# How long the L1 may take to show its kernel log after a case (it answers in under a
# second beside another worker); one that has not answered by then is not fit to share.
LOG_CHECK_TIMEOUT = 30.0
_SHARED = pytest.StashKey["SharedGuests"]()
_RETIRE = pytest.StashKey[Target]()   # the case left the shared guests of this target unfit


class L1Incident(ConsoleError):
    """The L1's kernel logged a panic, oops, lockup, stall or hung task during a case
    (`seen`: the log's words from the first of them to the end of that line), or the L1
    stopped answering."""

    def __init__(self, message: str, log: Path | None, seen: str = "") -> None:
        self.seen = seen or message.splitlines()[0]
        super().__init__(message, log)


class SharedGuestWarning(UserWarning):
    """A shared guest could not be stopped cleanly (it was killed as far as it could be)."""


@dataclass
class SharedGuests:
    """The shared guests of the run's targets; see the module docstring."""

    last_uses: dict[str, list[Key]] = field(default_factory=dict)
    _held: dict[Key, tuple[Any, Callable[[], None]]] = field(default_factory=dict)
    _retired: set[Key] = field(default_factory=set)
    _memos: dict[tuple[str, str], Any] = field(default_factory=dict)

    def plan(self, items: list[pytest.Item]) -> None:
        """Note, for each shared guest, the last of `items` that uses it."""
        last: dict[Key, str] = {}
        for item in items:
            if (target := target_of(item)) is not None:
                for name in shared_guests_of(item):
                    last[(name, target.id)] = item.nodeid
        self.last_uses = {}
        for key, nodeid in last.items():
            self.last_uses.setdefault(nodeid, []).append(key)

    def get(self, name: str, target: Target, start: Callable[[bool], G],
            stop: Callable[[G], None]) -> G:
        """The shared guest `name` of `target`; started first (`start(replacing)`, where
        `replacing` says a retired one is replaced) if there is none."""
        key = (name, target.id)
        if key not in self._held:
            guest = start(key in self._retired)
            self._held[key] = (guest, lambda: stop(guest))
        return self._held[key][0]   # type: ignore[no-any-return]

    def current(self, name: str, target: Target) -> Any | None:
        held = self._held.get((name, target.id))
        return held[0] if held else None

    def memo(self, name: str, target: Target, compute: Callable[[], G]) -> G:
        """What `compute` observed of the target's shared L1, once per L1."""
        key = (name, target.id)
        if key not in self._memos:
            self._memos[key] = compute()
        return self._memos[key]   # type: ignore[no-any-return]

    def release(self, key: Key) -> None:
        """Stop the guest of `key` unless it was stopped already; never raises."""
        if key[0] == "l1":
            self._memos = {k: v for k, v in self._memos.items() if k[1] != key[1]}
        if (held := self._held.pop(key, None)) is None:
            return
        try:
            held[1]()
        except Exception as exc:  # noqa: BLE001 - the next case must still get a fresh guest
            warnings.warn(SharedGuestWarning(f"{key[0]} of {key[1]}: stop failed: {exc}"),
                          stacklevel=2)

    def retire(self, target: Target) -> None:
        """Stop the target's shared guests now, the L1 first (its L2s die with it; in an
        LPAR, which is never stopped, the L2 is then stopped on its own): the next case
        that shares them gets fresh ones."""
        for name in reversed(SHARED_GUESTS):
            key = (name, target.id)
            if key in self._held:
                self._retired.add(key)
            self.release(key)

    def release_after(self, item: pytest.Item) -> None:
        keys = self.last_uses.get(item.nodeid, [])
        for key in sorted(keys, key=lambda k: SHARED_GUESTS.index(k[0])):
            self.release(key)


def registry(config: pytest.Config) -> SharedGuests:
    """The run's shared guests (this process's)."""
    return config.stash[_SHARED]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SHARED] = SharedGuests()


def pytest_collection_finish(session: pytest.Session) -> None:
    registry(session.config).plan(session.items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Once a case that shares its target's L1 has run: judge the L1 (module docstring)."""
    target = target_of(item)
    shared = registry(item.config)
    l1 = shared.current("l1", target) if target and "l1" in shared_guests_of(item) else None
    if target is None or not isinstance(l1, L1):
        return (yield)
    try:
        result = yield
    except (pytest.skip.Exception, Unavailable):
        raise
    except (Exception, pytest.fail.Exception, pytest.xfail.Exception) as exc:
        if incident := _judge(item, target, l1, exc, shared):
            raise incident from exc
        raise
    if incident := _judge(item, target, l1, None, shared):
        raise incident
    return result


def _judge(item: pytest.Item, target: Target, l1: L1, exc: BaseException | None,
           shared: SharedGuests) -> L1Incident | None:
    """Note that the case left its target's shared guests unfit (they are retired as its
    teardown begins, once its report has read how long their L0s waited for a CPU); the
    incident to report on the case, unless `exc` reports it already."""
    incident = _incident(l1)
    if incident is not None:
        why = str(incident).splitlines()[0]
    elif any(isinstance(e, PowernestError) for e in chain(exc)):
        why = f"a guest failed during the case: {str(exc).splitlines()[0][:300]}"
    elif exc is not None and (damage := [d.id for d in item.stash.get(DEVIATIONS_MET, [])
                                         if d.damages_l1]):
        why = f"the case met {', '.join(damage)}, which leaves its L1 damaged"
    else:
        return None
    item.user_properties.append((RETIRED, why))
    item.stash[_RETIRE] = target
    if incident is None or _reported(incident, l1, exc):
        return None
    return incident


def _incident(l1: L1) -> L1Incident | None:
    """What the L1's kernel logged since the case began, if it is an incident; or that
    the L1 no longer answers."""
    if not l1.alive():
        said = last_words(l1.log_path.read_text(errors="replace"))
        return L1Incident(f"{l1.name} ended during the case; its L0 QEMU said: "
                          f"{'; '.join(said) or 'nothing'}", l1.log_path)
    try:
        log = l1.case_log(LOG_CHECK_TIMEOUT)
    except PowernestError as exc:
        return L1Incident(f"{l1.name} did not show its kernel log after the case: "
                          f"{str(exc).splitlines()[0]}", l1.log_path)
    if (failure := find_failure(log)) is None:
        return None
    kind, at = failure
    line_start = log.rfind("\n", 0, at) + 1
    return L1Incident(f"{l1.name}'s kernel logged a {kind} during this case:\n"
                      f"{log[line_start:][:3000]}", l1.log_path,
                      seen=log[at:].split("\n", 1)[0])


def _reported(incident: L1Incident, l1: L1, exc: BaseException | None) -> bool:
    """Whether the case's own failure already is about its L1: an error of the L1's
    console (a crash, its L0's death, a timeout), one of a command in the L1, or a
    message that quotes what the L1's kernel logged."""
    return any(isinstance(e, ConsoleError) and e.log == l1.log_path
               or str(e).startswith(l1.name) or incident.seen in str(e) for e in chain(exc))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """As a case that left its target's shared guests unfit, or the last case that uses a
    shared guest, is torn down, first stop them: before the case's own fixtures (none uses
    a shared guest in its teardown) and before `cases` reads what its L1 did, which a
    spinning L2 slowed to 7 s."""
    shared = registry(item.config)
    if (target := item.stash.get(_RETIRE, None)) is not None:
        shared.retire(target)
    shared.release_after(item)
    return (yield)
