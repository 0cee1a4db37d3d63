"""What the suites import: the types of their fixtures, markers' arguments, and verbs.

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

from powernest.errors import Unavailable
from powernest.guests import L1
from powernest.hosts import HostSession
from powernest.inventory import CPU_MODELS, Host
from powernest.kinds import Ability, Target
from powernest.l2 import L2_SHELL_TIMEOUT, L2Guest
from powernest.l2runs import L2Runs
from powernest.plugin.shared import SharedGuests
from powernest.pool import GuestPool
from powernest.scenarios import SCENARIOS, Scenario, Stage, run_chain

__all__ = ["CPU_MODELS", "L2_SHELL_TIMEOUT", "SCENARIOS", "Ability", "GuestPool", "Host",
           "HostSession", "L1", "L2Guest", "L2Runs", "Scenario", "SharedGuests", "Stage", "Target",
           "Unavailable", "run_chain"]
