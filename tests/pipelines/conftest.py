"""One Prefect test harness per session: its local API takes ~15 s to start."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def pytest_collection_modifyitems(items):
    # Keep every harness user on one xdist worker, so only one server starts; and the
    # readers of one expensive module-scoped run on one worker, so it runs once.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "prefect_harness" in fixtures:
            item.add_marker(pytest.mark.xdist_group("prefect"))
        for run in ("trapped_run", "private_run"):
            if run in fixtures:
                item.add_marker(pytest.mark.xdist_group(run))
