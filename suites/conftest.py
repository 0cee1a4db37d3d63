"""The conformance suites: collecting them starts a powernest run (see ../conftest.py)."""

import pytest

from powernest.plugin.run import start_run


def pytest_configure(config: pytest.Config) -> None:
    start_run(config)
