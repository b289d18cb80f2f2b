"""The studio takes a ``lagged`` notice (issue 19, item 5): the daemon skipped live updates the
studio read too slowly for; the studio says so and goes on folding the job's events."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from anyi2v.desktop.models.connection import JobResult
from anyi2v.desktop.models.files import ResultHistory
from anyi2v.shared.document import load_shot
from anyi2v.shared.protocol import LaggedNotice
from tests.conftest import EXAMPLES

from .test_controllers import WAIT_MS, FakeSession, GatedRenderer, connected_jobs, record


def test_a_lagged_notice_is_shown_and_the_job_goes_on(qtbot, tmp_path: Path) -> None:
    shot = load_shot(EXAMPLES / "demo.json")
    session = FakeSession()
    jobs = connected_jobs(GatedRenderer(), session)
    infos, done = record(jobs.sig_info), record(jobs.sig_job_done)
    job = jobs.generate(shot, EXAMPLES, ResultHistory(tmp_path / "demo.json"))
    qtbot.waitUntil(lambda: len(session.jobs) == 1, timeout=WAIT_MS)
    job_id = session.jobs[0]
    folder, on_event, on_result, _on_error = session.callbacks[job_id]
    width, height = shot.output.width, shot.output.height

    def frame(index: int, seq: int) -> SimpleNamespace:
        content = SimpleNamespace(seq=seq, index=index, width=width, height=height)
        return SimpleNamespace(type="frame", content=content, buffers=(bytes(width * height * 3),))

    def daemon_side() -> None:  # frames 2 and 3 were dropped for a slow reader
        on_event(frame(0, 0))
        on_event(frame(1, 1))
        notice = LaggedNotice(job_id=job_id, first_seq=2, last_seq=3, dropped={"frame": 2})
        on_event(SimpleNamespace(type="lagged", content=notice, buffers=()))
        on_event(frame(4, 4))
        on_event(SimpleNamespace(type="done", content=SimpleNamespace(seq=5), buffers=()))
        on_result(JobResult(job_id, folder, {}))

    stray = threading.Thread(target=daemon_side, name="fake-session-job")
    stray.start()
    stray.join(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: done != [], timeout=WAIT_MS)
    assert any("skipped 2 live updates" in info for info in infos)
    assert job.frames_received == 3
    assert job.last_seq == 5
    assert job.state == "done"
    assert isinstance(job.frames[4], np.ndarray)
