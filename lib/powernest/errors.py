"""The root of powernest's exceptions, and the one that means "not here".

Every error the library raises on purpose is a `PowernestError`: shells and
connections (`ShellError`), consoles (`ConsoleError`), the inventory
(`InventoryError`), the lab build (`LabBuildError`), leases (`LeaseBusy`).
"""

from __future__ import annotations

from collections.abc import Iterator


class PowernestError(Exception):
    """An error of powernest's own; its message says what happened and where."""


class Unavailable(PowernestError):
    """What a case asks for cannot be had on this host; the message is the skip reason."""


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc`, then what it was raised from or while handling, and so on."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
