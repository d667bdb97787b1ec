import pytest

from tests.contract import contract_catalogue


@pytest.fixture(scope="session")
def catalogue():
    """The fact contract of docs/architecture.md (independent of installed detectors)."""
    return contract_catalogue()
