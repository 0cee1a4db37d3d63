"""A target's shared guests are stopped after the last case that uses them, L2 first."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from powernest.inventory import Inventory
from powernest.kinds import Target
from powernest.nested import API
from powernest.plugin.fixtures import SharedGuests

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
        shared.hold(name, target, lambda n=name, t=target: stopped.append(f"{n}-{t.host.name}"))
    for item in items:
        shared.release_after(item)
        stopped.append(f"after {item.nodeid}")
    assert stopped == ["after l1-a", "l2-a", "after l2-a", "after l1-b", "after caps",
                       "l1-a", "after lifecycle-a", "l2-b", "l1-b", "after l2-b"]


def test_a_guest_stopped_early_is_not_stopped_again() -> None:
    shared, stopped = SharedGuests(), []
    shared.plan([case("only", A, "l1")])   # type: ignore[list-item]
    key = shared.hold("l1", A, lambda: stopped.append("l1"))
    shared.release_after(case("only", A, "l1"))
    shared.release(key)   # the fixture's own teardown, at the end of the session
    assert stopped == ["l1"]

