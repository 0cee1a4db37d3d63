"""THE hcall case table.

Every row says what it does, what must come back and why (`Case.source`);
`model` defines the row; `cases_v2`, `cases_v2_state` and `cases_v1` hold the
rows that check what one hcall answers, `cases_l2` and `cases_v2_elements` the
behavioural ones (L2 micro-programs, state round trips).  Known deviations of
L0s from them: `deviations`.
"""

from __future__ import annotations

from powernest.hcalls.cases_l2 import CASES_L2_V1, CASES_L2_V2
from powernest.hcalls.cases_v1 import CASES_V1
from powernest.hcalls.cases_v2 import CASES_V2
from powernest.hcalls.cases_v2_elements import CASES_V2_ELEMENTS
from powernest.hcalls.cases_v2_state import CASES_V2_STATE
from powernest.hcalls.model import Case
from powernest.nested import API

# Behavioural rows the pre-merge gate runs besides each hcall's first row: under each
# API an L2 that leaves by an hcall (resuming after it) and one that faults on a load
# (every register it set comes back: an hcall may change CTR, XER and CR), and the
# round trip of the largest elements.
GATE_ROWS = ("v1-l2-exit-hcall", "v1-l2-exit-load-unmapped", "v2-l2-exit-hcall",
             "v2-l2-exit-load-unmapped", "v2-state-round-trip-vsrs")

CASES: tuple[Case, ...] = (CASES_V2 + CASES_V2_STATE + CASES_V1 + CASES_L2_V1 + CASES_L2_V2
                          + CASES_V2_ELEMENTS)

_BY_ID = {case.id: case for case in CASES}


def case(case_id: str) -> Case:
    """A row of the table by its id."""
    return _BY_ID[case_id]


def cases_for(api: API) -> tuple[Case, ...]:
    """The rows to run against an L0 that offers `api`."""
    return tuple(c for c in CASES if c.api is api)
