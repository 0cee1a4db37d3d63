"""Collection: which cases there are, in which group and order, and which cannot run.

Cases that take a `target` are parametrized by host x API (and, with a
`per_target` marker, jointly with values that depend on the target), cases
that take a `host` by host, so that every test id starts with the host.  Each case is
marked with its API and grouped for pytest-xdist (`--dist loadgroup`): by
target where the suite boots the L1s (a target's cases share its L1s, the
targets of one host are independent, so they spread over the workers; a suite's
cases that start L1s of their own form a group of their own), by host on an
LPAR, the one L1 of all its targets; and cases that kexec an L1 shared by the
host's other cases run after them.  (Whether a case can run on its host
is decided as it starts: `cases.py`.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

from powernest.inventory import Host
from powernest.kinds import Ability, Target, kind_of
from powernest.plugin.run import context
from powernest.scheduling import run_group


def host_of(node: pytest.Item | pytest.Function) -> Host | None:
    """The host a case runs against, from its `target` or `host` parameter."""
    callspec = getattr(node, "callspec", None)
    params = callspec.params if callspec else {}
    target = params.get("target")
    if isinstance(target, Target):
        return target.host
    host = params.get("host")
    return host if isinstance(host, Host) else None


def target_of(node: pytest.Item | pytest.Function) -> Target | None:
    callspec = getattr(node, "callspec", None)
    target = callspec.params.get("target") if callspec else None
    return target if isinstance(target, Target) else None


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by target or host first, so every test id starts with the host."""
    ctx = context(metafunc.config)
    if ctx is None:
        return
    if "target" in metafunc.fixturenames:
        targets = [t for h in ctx.hosts for t in kind_of(h).targets(h)]
        if marker := metafunc.definition.get_closest_marker("per_target"):
            argname, params_for = marker.args
            params = [pytest.param(t, *p.values, id=f"{t.id}-{p.id}", marks=p.marks)
                      for t in targets for p in params_for(t)]
            metafunc.parametrize(["target", argname], params, scope="session")
            return
        metafunc.parametrize("target", targets, ids=[t.id for t in targets], scope="session")
    elif "host" in metafunc.fixturenames:
        metafunc.parametrize("host", ctx.hosts, ids=[h.name for h in ctx.hosts],
                             scope="session")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None]:
    """Mark and group before the other plugins see the items (pytest-xdist reads the
    groups); order once they are done (after pytest's own fixture-scope order)."""
    for item in items:
        host = host_of(item)
        if host is None:
            continue
        target = target_of(item)
        part = "" if shared_guests_of(item) else item.path.stem
        item.add_marker(pytest.mark.xdist_group(run_group(host, target, part)))
        if target:
            item.add_marker(getattr(pytest.mark, target.api.marker))
    yield
    sizes = Counter(map(_group, items))
    items.sort(key=lambda item: _order(item, sizes))   # stable: every other order is kept


# The fixtures of a target's shared guests, innermost first: an L2 is stopped before its L1.
SHARED_GUESTS = ("l2", "l1")


def shared_guests_of(item: pytest.Item) -> set[str]:
    """The shared guests of its target (`SHARED_GUESTS`) a case uses."""
    return set(SHARED_GUESTS) & set(getattr(item, "fixturenames", ()))


def _group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker else ""


def _order(item: pytest.Item, sizes: Counter[str]) -> tuple[bool, bool, bool, int]:
    """The cases that share a target's L1s first (its longest group); then the groups of
    cases that start L1s of their own, the longest first, so that the last groups to
    start are short: kexec chains (a chain's three cases take about 20 s, one L1 booted,
    kexec'd and reset), then the others by their number of cases (an hcall case takes
    about a second); the cases that kexec a shared L1 (an LPAR's) after all others."""
    own_guests = target_of(item) is not None and not shared_guests_of(item)
    chain = item.get_closest_marker("kexec") is not None
    return (own_guests, _replaces_a_shared_l1(item), own_guests and not chain,
            -sizes[_group(item)] if own_guests else 0)


def _replaces_a_shared_l1(item: pytest.Item) -> bool:
    """Whether the case kexecs an L1 the host's other cases share (an LPAR)."""
    target = target_of(item)
    return (target is not None and item.get_closest_marker("kexec") is not None
            and kind_of(target.host).lacks(Ability.BOOTS_L1, target.host) is not None)
