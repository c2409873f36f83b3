"""The suite's budget (15 minutes on 2 cores) rests on `--dist loadgroup`: the tests of
one xdist group run on one worker, so a module-scoped run (`journey run` on Spark, the
Prefect API, a generated world) happens once. pytest-xdist adds the group to each test's
id; a pytest it cannot do that with (9.x with xdist 3.8) groups nothing, silently: the
suite took 1,847 s that way, 1,354 s with the groups on the same machine."""

from __future__ import annotations

import os

import pytest


@pytest.mark.xdist_group("suite-groups")
def test_an_xdist_group_reaches_the_scheduler(request):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("not run by pytest-xdist workers (make test runs it with -n 2)")
    if not getattr(request.config.option, "loadgroup", False):  # set by xdist's worker
        pytest.skip("not run with --dist loadgroup")
    assert request.node.nodeid.endswith("@suite-groups"), (
        "pytest-xdist did not add the group to the test's id: --dist loadgroup groups "
        "nothing with this pytest; pin pytest to a version xdist supports")
