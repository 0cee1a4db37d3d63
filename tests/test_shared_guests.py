"""A target's shared guests: stopped after the last case that uses them, L2 first; retired
L1 first, and started again for the next case that asks."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from powernest.inventory import Inventory
from powernest.kinds import Target
from powernest.nested import API
from powernest.plugin.shared import SharedGuests, SharedGuestWarning

HOSTS = Inventory.model_validate({"hosts": [{"name": "a", "kind": "tcg", "cpu": "power9"},
                                            {"name": "b", "kind": "tcg", "cpu": "power10"}]})
A, B = (Target(host, API.V1) for host in HOSTS.hosts)


def case(name: str, target: Target | None, *fixtures: str) -> Any:
    params = {"target": target} if target else {}
    return SimpleNamespace(nodeid=name, fixturenames=["pool", *fixtures],
                           callspec=SimpleNamespace(params=params))


def test_each_guest_stops_after_its_last_case_l2_before_l1() -> None:
    items = [case("l1-a", A, "l1"), case("l2-a", A, "l1", "l2"), case("l1-b", B, "l1"),
             case("caps", None), case("lifecycle-a", A, "l1"), case("l2-b", B, "l1", "l2")]
    shared, stopped = SharedGuests(), []
    shared.plan(items)   # type: ignore[arg-type]
    for name, target in (("l1", A), ("l2", A), ("l1", B), ("l2", B)):
        shared.get(name, target, lambda _, n=name, t=target: f"{n}-{t.host.name}",
                   stopped.append)
    for item in items:
        shared.release_after(item)
        stopped.append(f"after {item.nodeid}")
    assert stopped == ["after l1-a", "l2-a", "after l2-a", "after l1-b", "after caps",
                       "l1-a", "after lifecycle-a", "l2-b", "l1-b", "after l2-b"]


def test_a_guest_stopped_early_is_not_stopped_again() -> None:
    shared, stopped = SharedGuests(), []
    shared.plan([case("only", A, "l1")])   # type: ignore[list-item]
    shared.get("l1", A, lambda _: "l1", stopped.append)
    shared.release_after(case("only", A, "l1"))
    shared.release(("l1", A.id))
    assert stopped == ["l1"]


def test_a_retired_target_gets_fresh_guests_and_keeps_the_others() -> None:
    shared, events = SharedGuests(), []
    starts = iter(range(1, 10))

    def start(name: str) -> Callable[[bool], str]:
        def started(replacing: bool) -> str:
            events.append(f"start {name}" + (" again" if replacing else ""))
            return f"{name}#{next(starts)}"
        return started

    first = shared.get("l1", A, start("l1"), lambda g: events.append(f"stop {g}"))
    shared.get("l2", A, start("l2"), lambda g: events.append(f"stop {g}"))
    other = shared.get("l1", B, start("l1-b"), lambda g: events.append(f"stop {g}"))
    assert shared.memo("log", A, lambda: "first") == "first"
    shared.retire(A)
    assert events[-2:] == ["stop l1#1", "stop l2#2"]   # the L1 first: its L2 dies with it
    fresh = shared.get("l1", A, start("l1"), lambda g: events.append(f"stop {g}"))
    assert (first, fresh) == ("l1#1", "l1#4") and events[-1] == "start l1 again"
    assert shared.memo("log", A, lambda: "second") == "second"   # read again, of the new L1
    assert shared.get("l1", B, start("l1-b"), lambda g: None) == other


def test_a_guest_that_cannot_be_stopped_does_not_stop_the_run() -> None:
    shared = SharedGuests()

    def fail(guest: object) -> None:
        raise RuntimeError("console gone")

    shared.get("l1", A, lambda _: "l1", fail)
    with pytest.warns(SharedGuestWarning, match="console gone"):
        shared.retire(A)
    assert shared.current("l1", A) is None

