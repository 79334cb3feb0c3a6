"""Every ledger unit test again, on a throwaway PostgreSQL cluster (skipped where none is installed)."""

from __future__ import annotations

import pytest

from tests.unit.test_fleet_ledger import *  # noqa: F403
from tests.unit.test_ledger import *  # noqa: F403  (the same tests, collected here with the fixture below)
from tests.unit.test_parts_ledger import *  # noqa: F403


@pytest.fixture
def db(pg_url) -> str:
    return pg_url
