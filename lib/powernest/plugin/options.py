"""The plugin's command-line options and markers."""

from __future__ import annotations

import os

import pytest

MARKERS = {
    "premerge": "the fast gating subset (make premerge)",
    "nightly": "long cases run nightly (make run)",
    "api_v1": "cases under API v1 (nested-hv)",
    "api_v2": "cases under API v2 (nested-papr)",
    "kexec": "cases that kexec an L1",
    "requires(ability)": "the case needs a powernest.kinds.Ability of its host's kind; "
                         "skipped with the reason where the kind lacks it",
    "per_target(argname, params_for)": "parametrize argname jointly with the target, with "
                                       "the pytest.param values params_for(target) gives",
    "deviation(*deviations)": "known deviations (powernest.nested.Deviation) that make the "
                              "case a strict xfail where its L0 and API have them",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("powernest")
    group.addoption("--inventory", default=os.environ.get("POWERNEST_INVENTORY", "hosts.yaml"),
                    help="host inventory file (default: hosts.yaml)")
    group.addoption("--hosts", default="", help="comma-separated host names to use (default: all)")
    group.addoption("--reports", default="reports", help="where run directories go")
    group.addoption("--run-id", default="", help="name of this run (default: time-based)")
    group.addoption("--lease-timeout", type=float, default=120.0,
                    help="seconds to wait for a host another run holds, then skip it")
    group.addoption("--shard", default="", metavar="K/N",
                    help="run shard K of N: the selected hosts split by name, the same "
                         "way in every job (see powernest.shard)")
    group.addoption("--attachments-base", default="", metavar="DIR",
                    help="junit.xml's attachment paths are relative to DIR (default: the "
                         "directory pytest starts in, as a CI workspace)")
    group.addoption("--junit-strict", action="store_true",
                    help="junit.xml valid against Jenkins' junit-10.xsd: per-case properties "
                         "in system-out lines instead of <testcase><properties>")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
