"""Every benchmark suite runs end to end on tiny settings, so none can rot (the suites are split over two
modules, which the test runner's two workers take one each)."""

import pytest


@pytest.mark.parametrize("suite", ["vqa", "classify", "serving", "peer"])
def test_suite_runs_in_smoke_mode(smoke_run, suite):
    smoke_run(suite)
