"""Fixtures of the CLI tests (helpers live in ``cli_helpers``)."""

import pytest
from cli_helpers import trained_runs


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``trained(backend) -> folder`` of an 8-step ``dp -v --<backend> train`` run (cached per session)."""
    return trained_runs(tmp_path_factory)
