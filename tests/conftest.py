"""Fixtures shared by powernest's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from powernest.lab import LabImages, find_lab
from sshd import SSHD, Sshd, running_sshd


@pytest.fixture(scope="session")
def lab() -> LabImages:
    """The lab images, which `make test` builds first."""
    images = find_lab()
    if images is None:
        pytest.fail("no lab images: run `make lab` (make test does it first)")
    return images


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on 127.0.0.1, run as the current user for the whole session."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} not found: install openssh-server (`make setup`) for the SSH tests")
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
