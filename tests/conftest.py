"""Test-wide settings: hypothesis profiles and paths."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# Property tests run at least 200 cases each (issue 2); CI uses the same profile.
settings.register_profile("default", max_examples=300, deadline=None)
settings.register_profile("quick", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
