"""Test-wide settings: hypothesis profiles, paths, and torch's threads on a busy machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# Property tests run at least 200 cases each (issue 2); CI uses the same profile.
settings.register_profile("default", max_examples=300, deadline=None)
settings.register_profile("quick", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# On a machine already busy (issue 19: `make test` beside `stress-ng --cpu 2` on 2 cores), torch's
# OpenMP threads spin against the other load: one of the suite's slowest tests took 291 s with two
# threads and 122 s with one (50 s and 73 s on a quiet machine; BENCHMARKS.md). So where the load is
# already a core per CPU when the suite starts, the daemons and workers the tests start run torch on one
# thread (they inherit OMP_NUM_THREADS), and each test in this process does whenever the load counts
# a core more than there are (its own two threads are part of the load).
CPUS = os.cpu_count() or 1
if os.getloadavg()[0] >= CPUS:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads_for_the_load() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1 if os.getloadavg()[0] >= CPUS + 1 else CPUS)
