"""A case as the dashboard shows it, with its console logs (the dashboard's sections
share it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from powernest.reporting.journal import Case

_XPASS_STRICT = "[XPASS(strict)]"


@dataclass
class Log:
    """A console log: its level (`L1`, `L2`, `LPAR`), whose it is, its guest and link."""

    level: str
    whose: str
    guest: str
    href: str
    title: str


@dataclass
class Entry:
    """A case as the page shows it."""

    case: Case
    param: str
    message: str
    deviation: str
    logs: list[Log]
    anchor: str
    new: bool = False
    flaky: list[str] = field(default_factory=list)   # other outcomes, same code, L0, kernel

    @property
    def outcome(self) -> str:
        return self.case.outcome

    @property
    def xpass_strict(self) -> bool:
        return self.case.details.startswith(_XPASS_STRICT)
