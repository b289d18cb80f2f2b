"""The studio end to end: the embedded daemon (toy-world model) on a free port, an example shot,
generate, every frame in the player, an MP4 export decoded and counted; the event loop keeps turning
throughout. Screenshots of the main states go to ``$ANYI2V_SCREENSHOTS`` (default out/screenshots)."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

from anyi2v.desktop.models.connection import ConnectionSettings
from anyi2v.desktop.models.overlay import boxes_at
from tests.conftest import EXAMPLES
from tests.desktop.conftest import TickCounter, drag, point, save_screenshot

pytestmark = pytest.mark.slow


@pytest.fixture
def studio(qtbot, studio_home):
    from PySide6.QtWidgets import QMessageBox

    from anyi2v.desktop.qt.window import StudioWindow

    window = StudioWindow(config_path=studio_home / "config" / "studio.json", connection=ConnectionSettings("local"))
    window.documents.ask_unsaved = lambda question: QMessageBox.StandardButton.Discard
    qtbot.addWidget(window)
    window.show()
    yield window
    window.shutdown()
    assert window.jobs.daemon is None or window.jobs.daemon.process.poll() is not None, (
        "the embedded daemon outlived the window"
    )


def test_generate_with_the_embedded_daemon_play_and_export(qtbot, studio, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    window = studio
    shots = tmp_path / "shots"
    shutil.copytree(EXAMPLES, shots, ignore=shutil.ignore_patterns("*.results"))
    save_screenshot(window, "1-empty")
    ticks = TickCounter()

    assert window.documents.open_path(shots / "demo.json"), window.last_error
    qtbot.waitUntil(lambda: window.renders.conditions is not None, timeout=60_000)
    assert window.renders.condition_image is not None
    assert window.renders.condition_image.std() > 0  # a depth image, not blank
    save_screenshot(window, "2-mesh-loaded-depth")
    # Move the torus's box at frame 8 down: a new key there, and the generated clip follows it.
    window.playback.set_frame(8)
    view = window.condition_view
    x0, y0, x1, y1 = boxes_at(window.shot, 8)["torus"]
    middle = ((x0 + x1) / 2, (y0 + y1) / 2)
    drag(qtbot, view, point(view, *middle), point(view, middle[0], middle[1] + 0.2))
    assert [key.frame for key in window.shot.tracks[0].keyframes] == [0, 8, 15]
    moved = boxes_at(window.shot, 8)["torus"]
    assert moved[1] == pytest.approx(y0 + 0.2, abs=0.02)
    window.documents.selection.set({("torus", 8)})
    save_screenshot(window, "3-tracks-on-the-timeline")

    window.editor.set_value(("sampling", "steps"), 3)
    qtbot.waitUntil(lambda: window.jobs.connection_status.state == "connected", timeout=120_000)
    assert "toy-world" in window.jobs.connection_status.line
    with qtbot.waitActive(window):  # shortcuts go to the active window
        window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Generate
    assert "Generate" not in window.last_error, window.last_error
    assert window.jobs.job is not None
    qtbot.waitUntil(lambda: window.jobs.job is not None
                    and (window.jobs.job.frames_received > 0 or window.jobs.job.finished), timeout=900_000)  # fmt: skip
    if not window.jobs.job.finished:
        save_screenshot(window, "4-generation-in-progress")
    qtbot.waitUntil(lambda: window.jobs.job.finished, timeout=900_000)
    assert window.jobs.job.state == "done", window.jobs.job.status_line
    ticks.stop()
    assert ticks.longest_gap() < 0.5, f"the GUI thread stalled for {ticks.longest_gap():.2f} s while generating"

    assert [key.frame for key in window.jobs.job_shot.tracks[0].keyframes] == [0, 8, 15]  # the moved box was sent
    n_frames = window.shot.output.n_frames
    assert len(window.player.frames) == n_frames
    assert all(image is not None and image.width() == 128 for image in window.player.frames)
    qtbot.waitUntil(lambda: window.results.result_folder is not None, timeout=60_000)  # fetched after the last event
    assert window.results.result_folder.parent == shots / "demo.results"
    # the condition it was made from is kept with it: compare modes show that one, not a later render
    qtbot.waitUntil(lambda: (window.results.result_folder / "condition.png").is_file(), timeout=10_000)
    assert np.array_equal(window.results.result_condition, window.renders.condition_image)
    qtbot.waitUntil(lambda: window.history_combo.count() == 1, timeout=10_000)  # listed off the GUI thread
    assert window.history_combo.currentData() == str(window.results.result_folder)
    # the status line learns the device once the model has loaded, and that the daemon is idle again
    qtbot.waitUntil(lambda: window.jobs.connection_status.line == "Connected: toy-world on cpu, idle", timeout=10_000)
    assert not window.condition_view.busy  # no stale "rendering…" once the last render is shown

    qtbot.keyClick(window, Qt.Key.Key_Space)  # play
    assert window.playback.playing
    qtbot.waitUntil(lambda: window.player.frame != 8, timeout=5_000)
    window.compare_combo.setCurrentText("side by side")
    save_screenshot(window, "5-result-playing")
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.playback.playing

    missing = tmp_path / "no-such-folder" / "result.mp4"
    thread = window.results.export_result(missing)
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=60_000)
    qtbot.waitUntil(lambda: "does not exist" in window.last_error, timeout=5_000)  # a message, not a crash

    # File > Export (Ctrl+E): the dialog offers demo.mp4 beside the shot; the user types "result"
    offered = []

    def save_dialog(parent, title, start, filters):
        offered.append(start)
        return str(tmp_path / "result"), "MP4 video (*.mp4)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert offered == [str(shots / "demo.mp4")]
    target = tmp_path / "result.mp4"
    qtbot.waitUntil(lambda: "Exported" in window.statusBar().currentMessage(), timeout=60_000)
    assert target.is_file(), window.last_error
    with av.open(str(target)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == n_frames
    assert decoded[0].shape == (128, 128, 3)
    shown = window.results.result_frames()[0]
    assert np.abs(decoded[0].astype(int) - shown.astype(int)).mean() < 12  # lossy, but the same
