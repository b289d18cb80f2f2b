"""The studio opens shots through ``shared.document.load_shot``: what that refuses (issue 19, item 14), the
studio refuses too, with the same ``ShotError``, instead of blocking its GUI thread on a FIFO or keeping
one of two values of a key."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from anyi2v.desktop.models.document import ShotDocument
from anyi2v.shared.errors import ShotError
from tests.conftest import EXAMPLES


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_opening_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shot.json"
    os.mkfifo(path)
    timer = threading.Timer(5.0, lambda: path.write_bytes(b"{}"))  # unblocks a reader that waits: fail, not hang
    timer.start()
    try:
        with pytest.raises(ShotError, match=r"not a regular file \(a FIFO\)"):
            ShotDocument.open(path)
    finally:
        timer.cancel()


def test_opening_a_shot_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    text = (EXAMPLES / "demo.json").read_text()
    path = tmp_path / "shot.json"
    path.write_text(text.replace('"prompt":', '"prompt": "a blue torus", "prompt":', 1))
    assert json.loads(path.read_text())["prompt"] != "a blue torus"  # plain json keeps the last one silently
    with pytest.raises(ShotError) as caught:
        ShotDocument.open(path)
    assert [problem.where for problem in caught.value.problems] == ["prompt"]
