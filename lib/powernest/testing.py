"""All the suites import: the types of their fixtures, markers' arguments, what the
APIs require (`powernest.nested`) and the hcall table, and verbs.

A suite observes and checks; how hosts, guests and procedures work lives in
the library.  Markers:

- `@pytest.mark.requires(Ability.RESETS_L1)`: the case needs an ability of its
  host's kind (`powernest.kinds.Ability`); skipped with the kind's reason where
  it is missing.
- `@pytest.mark.deviation(VPA_ELEMENT, ...)`: known deviations that make the case
  a strict xfail where its L0 and API have them; for deviations that depend on
  what a case observed, the `expect_deviation` fixture.

`Unavailable`, raised while a case sets up or runs, skips it with its message.
"""

from powernest.bootwatch import BootStalled
from powernest.console import find_failure
from powernest.errors import Unavailable
from powernest.guests import L1
from powernest.hcalls.cases import GATE_ROWS
from powernest.hcalls.deviations import deviation
from powernest.hcalls.model import Case
from powernest.hcalls.numbers import V1_HCALLS, V2_HCALLS
from powernest.hcalls.runner import HcallRunner, cases_for_target, isolated
from powernest.hcalls.verdict import Outcome
from powernest.hosts import HostSession
from powernest.inventory import CPU_MODELS, Host
from powernest.kinds import Ability, Target
from powernest.l2 import L2_SHELL_TIMEOUT, L2Guest
from powernest.l2runs import L2Runs
from powernest.nested import (
    API,
    HDEC_LOST,
    IDLE_L2_SPINS,
    KERNEL_APIS,
    SET_CAPABILITIES_ONCE,
    SMP_L2_STALLS,
    TLB_INVALIDATE,
    VPA_ELEMENT,
    Deviation,
    cap_rule,
    kvm_lines,
    l1_expectation,
    mismatches,
    observed_api,
    registers_again,
)
from powernest.plugin.shared import SharedGuests
from powernest.pool import GuestPool
from powernest.scenarios import SCENARIOS, Scenario, Stage, run_chain

__all__ = [
    "API", "CPU_MODELS", "GATE_ROWS", "HDEC_LOST", "IDLE_L2_SPINS", "KERNEL_APIS", "L1",
    "L2_SHELL_TIMEOUT", "SCENARIOS", "SET_CAPABILITIES_ONCE", "SMP_L2_STALLS", "TLB_INVALIDATE",
    "BootStalled",
    "V1_HCALLS", "V2_HCALLS", "VPA_ELEMENT", "Ability", "Case", "Deviation", "GuestPool",
    "HcallRunner", "Host", "HostSession", "L2Guest", "L2Runs", "Outcome", "Scenario",
    "SharedGuests", "Stage", "Target", "Unavailable", "cap_rule", "cases_for_target", "deviation",
    "find_failure", "isolated", "kvm_lines", "l1_expectation", "mismatches", "observed_api",
    "registers_again", "run_chain",
]
