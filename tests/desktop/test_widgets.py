"""Widget tests (pytest-qt, offscreen): boxes drawn and moved with the mouse become keys in the
timeline; interpolation and undo; the event loop keeps turning while a mesh loads and renders."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from anyi2v.desktop.models.overlay import boxes_at
from tests.conftest import EXAMPLES
from tests.desktop.conftest import TickCounter, drag, point


def open_demo(qtbot, window) -> None:
    assert window.documents.open_path(EXAMPLES / "demo.json"), window.last_error
    qtbot.waitUntil(lambda: window.renders.conditions is not None, timeout=60_000)


def test_draw_a_box_move_it_at_another_frame_and_undo(qtbot, window):
    open_demo(qtbot, window)
    view = window.condition_view
    drag(qtbot, view, point(view, 0.6, 0.1), point(view, 0.9, 0.3))
    assert [t.id for t in window.shot.tracks] == ["torus", "track-1"]
    first = boxes_at(window.shot, 0)["track-1"]
    assert first == tuple(round(v, 2) for v in first) or abs(first[0] - 0.6) < 0.01
    assert window.editor.selected_track == "track-1"

    window.playback.set_frame(8)
    drag(qtbot, view, point(view, 0.75, 0.2), point(view, 0.75, 0.5))  # the box's middle, 0.3 down
    moved = boxes_at(window.shot, 8)["track-1"]
    assert abs(moved[1] - (first[1] + 0.3)) < 0.01
    row = next(r for r in window.timeline.rows if r.track_id == "track-1")
    assert [(k.frame, k.glyph) for k in row.keys] == [(0, "circle"), (8, "circle")]

    # Click the new key in the timeline, then make it a constant key.
    qtbot.mouseClick(
        window.timeline, Qt.MouseButton.LeftButton, pos=window.timeline.key_position("track-1", 8).toPoint()
    )
    assert window.documents.selection.keys == {("track-1", 8)}
    window.timeline.sig_interpolation_requested.emit(set(window.documents.selection.keys), "constant")
    row = next(r for r in window.timeline.rows if r.track_id == "track-1")
    assert [(k.frame, k.glyph) for k in row.keys] == [(0, "circle"), (8, "square")]

    window.documents.undo_stack.undo()  # the interpolation
    window.documents.undo_stack.undo()  # the move: the box at frame 8 is the held first box again
    assert boxes_at(window.shot, 8)["track-1"] == first
    assert window.timeline.rows[1].keys[-1].frame == 0
    window.documents.undo_stack.redo()
    assert boxes_at(window.shot, 8)["track-1"] == moved
    assert window.documents.document.dirty


def test_keyboard_shortcuts_step_insert_and_delete(qtbot, window):
    open_demo(qtbot, window)
    window.editor.select_track("torus")
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.playback.frame == 2
    qtbot.keyClick(window, Qt.Key.Key_I)
    assert [k.frame for k in window.shot.tracks[0].keyframes] == [0, 2, 15]
    window.documents.selection.set({("torus", 2)})
    qtbot.keyClick(window, Qt.Key.Key_Delete)
    assert [k.frame for k in window.shot.tracks[0].keyframes] == [0, 15]
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.playback.playing
    qtbot.waitUntil(lambda: window.playback.frame != 2, timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.playback.playing


def test_a_refused_edit_says_why_and_changes_nothing(qtbot, window):
    open_demo(qtbot, window)
    before = window.shot
    window.settings.frames.setValue(10)
    window.settings.frames.editingFinished.emit()
    assert window.shot == before
    assert "has a key at frame 15" in window.last_error
    assert window.settings.frames.value() == 16  # the panel shows the shot's value again


def test_the_event_loop_keeps_turning_while_a_mesh_loads_and_orbits(qtbot, window):
    ticks = TickCounter()
    open_demo(qtbot, window)  # loads the mesh in a child process and renders it off the GUI thread
    view = window.condition_view
    centre = view.rect().center()
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=centre)
    for step in range(1, 30):
        qtbot.mouseMove(view, centre + QPoint(4 * step, step))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=centre + QPoint(120, 29))
    eye = window.shot.scene.camera.eye
    qtbot.waitUntil(lambda: window.renders.render_worker.idle() and not view.busy, timeout=30_000)
    ticks.stop()
    assert eye != (0.75, 0.5, 2.9)  # the orbit moved the shot's camera
    assert len(ticks.times) > 10
    assert ticks.longest_gap() < 0.5, f"the GUI thread stalled for {ticks.longest_gap():.2f} s"
    window.documents.undo_stack.undo()
    assert window.shot.scene.camera.eye == (0.75, 0.5, 2.9)


def test_opening_a_broken_file_is_a_message_not_a_crash(qtbot, window, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 3, "prompt": 5}')
    assert not window.documents.open_path(bad)
    assert "bad.json is not a valid shot" in window.last_error
    assert window.documents.document is None
    mesh = tmp_path / "broken.obj"
    mesh.write_text("v 0 0 0\nf 1 2 3\n")
    assert window.documents.open_path(mesh)  # a new shot around it; the render fails with a message
    qtbot.waitUntil(lambda: "could not be rendered" in window.last_error, timeout=30_000)


def test_view_coordinates_round_trip(window):
    view = window.condition_view
    window.documents.open_path(EXAMPLES / "demo.json")
    x, y = view.to_normalized(QPointF(view.to_widget(0.25, 0.75)))
    assert (round(x, 6), round(y, 6)) == (0.25, 0.75)


def test_closing_with_unsaved_changes_asks_and_can_save(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    open_demo(qtbot, window)
    window.documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "changed"}))
    asked = []
    window.documents.ask_unsaved = lambda question: asked.append(question) or QMessageBox.StandardButton.Cancel
    assert not window.documents.confirm_discard()
    assert "Save the changes to demo.json" in asked[0]
    target = tmp_path / "saved.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.documents.ask_unsaved = lambda question: QMessageBox.StandardButton.Save
    window.documents.document.path = None  # as if it were new: Save asks for a name
    assert window.documents.confirm_discard()
    from anyi2v.shared.document import load_shot

    assert load_shot(target).prompt == "changed"
    assert not window.documents.document.dirty


def test_double_clicking_a_scene_object_seeds_a_track_from_its_box(qtbot, window):
    assert window.documents.open_path(EXAMPLES / "assets" / "torus.obj"), window.last_error  # a new shot, no tracks
    qtbot.waitUntil(lambda: window.renders.conditions is not None, timeout=60_000)
    assert window.shot.tracks == ()
    (name, box), *_ = window.renders.conditions.object_boxes.items()
    assert window.objects_menu.isEnabled()
    assert [action.text() for action in window.objects_menu.actions()] == list(window.renders.conditions.object_boxes)
    view = window.condition_view
    centre = point(view, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=centre)
    (track,) = window.shot.tracks
    assert track.label == name
    assert [key.frame for key in track.keyframes] == [0]
    assert track.keyframes[0].box == pytest.approx(box, abs=1e-6)
    assert window.editor.selected_track == track.id
    assert name not in view.unseeded_objects()  # no second track from the same double-click
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=centre)  # now on the track's box: nothing new
    assert len(window.shot.tracks) == 1
    window.documents.undo_stack.undo()
    assert window.shot.tracks == ()


def test_typing_in_the_prompt_does_not_trigger_the_timeline_shortcuts(qtbot, window):
    open_demo(qtbot, window)
    window.activateWindow()
    prompt = window.settings.prompt
    prompt.setFocus()
    prompt.selectAll()
    qtbot.keyClicks(prompt, "a fish ")  # Space plays, I keys, Delete deletes: not while typing
    qtbot.keyClick(prompt, Qt.Key.Key_I)
    qtbot.keyClick(prompt, Qt.Key.Key_Left)
    qtbot.keyClick(prompt, Qt.Key.Key_Delete)
    assert not window.playback.playing
    assert window.playback.frame == 0
    assert [k.frame for k in window.shot.tracks[0].keyframes] == [0, 15]
    assert prompt.toPlainText() == "a fish "
    qtbot.waitUntil(lambda: window.shot.prompt == "a fish ", timeout=3_000)  # committed after a pause


def test_an_image_layer_over_the_scene_limited_to_a_mask(qtbot, window, tmp_path):
    import shutil

    import numpy as np
    from PIL import Image
    from PySide6.QtWidgets import QComboBox, QPushButton

    shots = tmp_path / "shot"
    shutil.copytree(EXAMPLES, shots)
    Image.fromarray(np.full((128, 128, 3), 255, np.uint8)).save(shots / "white.png")
    mask = np.zeros((128, 128), np.uint8)
    mask[:, 64:] = 255  # the right half
    Image.fromarray(mask).save(shots / "right.png")
    assert window.documents.open_path(shots / "demo.json"), window.last_error
    qtbot.waitUntil(lambda: window.renders.conditions is not None, timeout=60_000)
    depth = window.renders.condition_image.copy()
    panel = window.settings
    picks = iter([shots / "white.png", shots / "right.png"])
    panel.pick_file = lambda title, file_filter: next(picks)

    add_image = next(b for b in panel.findChildren(QPushButton) if b.text() == "Add an image layer…")
    add_image.click()
    assert [layer.source.kind for layer in window.shot.conditions] == ["scene", "image"]
    assert window.shot.conditions[1].source.path == "white.png"

    def region_combo(index):
        return [c for c in panel.findChildren(QComboBox) if c.isVisible() and c.itemText(0) == "everywhere"][index]

    qtbot.waitUntil(lambda: len([c for c in panel.findChildren(QComboBox) if c.isVisible()
                                 and c.itemText(0) == "everywhere"]) == 2)  # fmt: skip
    combo = region_combo(1)
    combo.setCurrentIndex(combo.count() - 1)  # "mask image…"
    combo.activated.emit(combo.count() - 1)
    assert window.shot.conditions[1].region.kind == "mask"
    assert window.shot.conditions[1].region.path == "right.png"
    qtbot.waitUntil(lambda: window.renders.render_worker.idle() and not window.condition_view.busy, timeout=30_000)
    image = window.renders.condition_image
    assert image[:, 70:].min() == 255  # the white image, inside the mask
    assert np.array_equal(image[:, :60], depth[:, :60])  # the depth render outside it
    window.documents.undo_stack.undo()
    window.documents.undo_stack.undo()
    assert [layer.source.kind for layer in window.shot.conditions] == ["scene"]


class FakeSession:
    """Stands in for a DaemonSession: records what the window asks of the daemon."""

    def __init__(self):
        self.jobs, self.cancelled = [], []

    def run_job(self, job_id, document, condition, folder, on_event, on_result, on_error):
        self.jobs.append(job_id)

    def cancel(self, job_id, on_error):
        self.cancelled.append(job_id)

    def stop(self, timeout=0.0):
        pass


def connect_fake(window):
    from anyi2v.desktop.models.connection import ConnectionStatus

    window.jobs.session = FakeSession()
    window.jobs.set_status(ConnectionStatus("connected", "tcp://127.0.0.1:1", "toy-world", "cpu"))
    return window.jobs.session


def test_cancel_while_preparing_sends_nothing_and_each_attempt_is_a_new_job(qtbot, window):
    open_demo(qtbot, window)
    session = connect_fake(window)
    window.generate()
    assert window.jobs.job.state == "preparing"
    window.jobs.cancel()
    assert window.jobs.job.state == "cancelled"
    qtbot.wait(1500)  # the condition render finishes meanwhile: the job must not be sent
    assert session.jobs == []
    window.generate()
    qtbot.waitUntil(lambda: len(session.jobs) == 1, timeout=30_000)
    window.jobs.job.state = "failed"  # as a failed job ends
    window.generate()  # again, unchanged: a new id, or the daemon would answer with the failed job
    qtbot.waitUntil(lambda: len(session.jobs) == 2, timeout=30_000)
    first, second = session.jobs
    assert first != second
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]  # the same shot and condition
    window.jobs.cancel()
    assert session.cancelled == [second]


def test_text_typed_a_moment_ago_is_saved_and_sent(qtbot, window, tmp_path):
    import shutil

    shutil.copytree(EXAMPLES, tmp_path / "shots")
    assert window.documents.open_path(tmp_path / "shots" / "demo.json")
    qtbot.waitUntil(lambda: window.renders.conditions is not None, timeout=60_000)
    prompt = window.settings.prompt
    prompt.setFocus()
    prompt.selectAll()
    qtbot.keyClicks(prompt, "a blue fox")
    assert window.documents.save()  # at once, before the typing pause has passed
    from anyi2v.shared.document import load_shot

    assert load_shot(tmp_path / "shots" / "demo.json").prompt == "a blue fox"
    window.settings.steps.setFocus()
    window.settings.steps.lineEdit().selectAll()
    qtbot.keyClicks(window.settings.steps.lineEdit(), "7")  # no Enter, no focus change
    session = connect_fake(window)
    window.generate()
    assert window.jobs.job_shot.sampling.steps == 7
    window.jobs.cancel()
    assert session.jobs == []


def test_save_as_to_another_folder_keeps_every_path_and_undo_pointing_at_the_same_files(qtbot, window, tmp_path):
    import shutil

    from anyi2v.shared.document import load_shot

    shutil.copytree(EXAMPLES, tmp_path / "a")
    assert window.documents.open_path(tmp_path / "a" / "camera_pan.json"), window.last_error  # an image layer
    qtbot.waitUntil(lambda: window.renders.conditions is not None, timeout=60_000)
    image = (tmp_path / "a" / window.shot.conditions[0].source.path).resolve()
    window.documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "first"}))
    target = tmp_path / "b" / "deep" / "pan.json"
    target.parent.mkdir(parents=True)
    assert window.documents.save_to(target)
    assert (target.parent / window.shot.conditions[0].source.path).resolve() == image
    assert (target.parent / window.settings.shot.conditions[0].source.path).resolve() == image  # the panel too
    window.settings._set_layer(0, "modality", "sketch")  # an edit from the panel after the move
    assert (target.parent / window.shot.conditions[0].source.path).resolve() == image
    window.documents.undo_stack.undo()
    window.documents.undo_stack.undo()  # back before "first": still the same image from the new folder
    assert (target.parent / window.shot.conditions[0].source.path).resolve() == image
    assert window.documents.save()
    assert load_shot(target).conditions[0].source.path == window.shot.conditions[0].source.path


def test_undoing_a_key_move_selects_the_moved_key_again_not_its_neighbour(qtbot, window):
    open_demo(qtbot, window)
    window.playback.set_frame(5)
    window.editor.select_track("torus")
    window.editor.insert_key()  # keys 0, 5, 15
    window.documents.selection.set({("torus", 5)})
    window.editor.move_keys({("torus", 5)}, 10)  # onto 15: it replaces that key
    assert window.documents.selection.keys == {("torus", 15)}
    window.documents.undo_stack.undo()
    assert [k.frame for k in window.shot.tracks[0].keyframes] == [0, 5, 15]
    assert window.documents.selection.keys == {("torus", 5)}  # the key that was moved, not the one at 15
    window.documents.undo_stack.redo()
    assert window.documents.selection.keys == {("torus", 15)}


def test_separate_changes_are_separate_undo_steps_and_quick_ones_merge(qtbot, window):
    open_demo(qtbot, window)
    window.editor.set_frame_count(20)
    window.editor.set_frame_count(24)  # at once: merged, like a spin box being dragged
    assert window.documents.undo_stack.count() == 1
    window.documents.undo_stack.command(0).last_change -= 10  # as if the next change came much later
    window.editor.set_frame_count(16)
    assert window.documents.undo_stack.count() == 2
    window.documents.undo_stack.undo()
    assert window.shot.output.n_frames == 24
    window.documents.undo_stack.undo()
    assert window.shot.output.n_frames == 16


def test_a_box_drag_stops_playback_and_keys_the_frame_it_started_on(qtbot, window):
    open_demo(qtbot, window)
    view = window.condition_view
    window.playback.set_frame(3)
    window.playback.set_playing(True)
    x0, y0, x1, y1 = boxes_at(window.shot, 3)["torus"]
    start = point(view, (x0 + x1) / 2, (y0 + y1) / 2)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    assert not window.playback.playing
    qtbot.wait(300)  # the play timer would have moved the playhead by now
    qtbot.mouseMove(view, start + QPoint(0, 30))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(0, 30))
    assert [k.frame for k in window.shot.tracks[0].keyframes] == [0, 3, 15]


def test_a_result_from_the_history_plays_and_exports_with_its_own_shot(qtbot, window, tmp_path):
    import json
    import shutil

    import av
    import numpy as np
    from PIL import Image

    shutil.copytree(EXAMPLES, tmp_path / "shots")
    assert window.documents.open_path(tmp_path / "shots" / "demo.json")
    made_with = window.shot.model_copy(update={"output": window.shot.output.model_copy(update={"fps": 12.0})})
    folder = tmp_path / "shots" / "demo.results" / "20261122-101010-abcd1234"
    (folder / "frames").mkdir(parents=True)
    for index in range(4):
        Image.fromarray(np.full((128, 128, 3), 60 * index, np.uint8)).save(folder / "frames" / f"{index:04d}.png")
    (folder / "manifest.json").write_text(json.dumps({"job_id": "studio-x-abcd1234", "n_frames": 4}))
    (folder / "shot.json").write_text(made_with.model_dump_json())
    Image.fromarray(np.full((128, 128, 3), 7, np.uint8)).save(folder / "condition.png")
    window.results.load_history()
    qtbot.waitUntil(lambda: window.history_combo.count() == 1, timeout=10_000)
    assert window.history_combo.currentIndex() == -1  # listed, not shown unasked
    window.history_combo.setCurrentIndex(0)
    window.history_combo.activated.emit(0)  # what choosing it in the list sends
    qtbot.waitUntil(lambda: len(window.results.result_frames()) == 4, timeout=10_000)
    assert window.player.frames[3].pixel(5, 5) & 0xFF == 180
    assert window.results.result_shot().output.fps == 12.0
    assert window.player.condition.pixel(5, 5) & 0xFF == 7  # compared with the condition it was made from
    target = tmp_path / "old.mp4"
    thread = window.results.export_result(target)
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=30_000)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 12  # the result's own rate, not the open shot's 8
        assert sum(1 for _ in container.decode(stream)) == 4


def test_save_as_leaves_a_saved_shots_results_with_it(qtbot, window, tmp_path):
    import shutil

    shutil.copytree(EXAMPLES, tmp_path / "shots")
    assert window.documents.open_path(tmp_path / "shots" / "demo.json")
    result = tmp_path / "shots" / "demo.results" / "20261122-000000-abcd1234"
    result.mkdir(parents=True)
    (result / "manifest.json").write_text('{"job_id": "x", "n_frames": 4}')
    assert window.documents.save_to(tmp_path / "shots" / "copy.json")
    qtbot.wait(300)
    assert (result / "manifest.json").is_file()  # still beside demo.json
    assert not (tmp_path / "shots" / "copy.results").exists()


def test_recent_files_are_listed_at_start_and_a_deleted_one_leaves_the_list(qtbot, studio_home, tmp_path):
    import shutil

    from PySide6.QtWidgets import QMessageBox

    from anyi2v.desktop.qt.window import StudioWindow

    shots = tmp_path / "shots"
    shutil.copytree(EXAMPLES, shots)
    config = studio_home / "config" / "studio.json"
    first = StudioWindow(config_path=config, start_daemon=False)
    qtbot.addWidget(first)
    assert first.documents.open_path(shots / "demo.json")
    assert first.documents.open_path(shots / "camera_pan.json")
    first.shutdown()
    (shots / "camera_pan.json").unlink()
    second = StudioWindow(config_path=config, start_daemon=False)
    second.documents.ask_unsaved = lambda question: QMessageBox.StandardButton.Discard
    qtbot.addWidget(second)
    listed = [action.text() for action in second.recent_menu.actions()]
    assert listed == [str(shots / "camera_pan.json"), str(shots / "demo.json")]
    second.recent_menu.actions()[0].trigger()
    assert "no longer exists" in second.last_error
    assert [action.text() for action in second.recent_menu.actions()] == [str(shots / "demo.json")]
    second.shutdown()


def test_leaving_a_field_that_shows_a_rounded_value_does_not_change_the_shot(qtbot, window):
    open_demo(qtbot, window)
    window.editor.set_value(("method", "learning_rate"), 2e-5)
    window.editor.set_value(("output", "fps"), 0.5)
    before = window.shot
    for spin in (window.settings.method_widgets["learning_rate"], window.settings.fps):
        spin.editingFinished.emit()  # focus in and out without typing
    assert window.shot == before
    assert window.shot.method.learning_rate == 2e-5
    assert window.settings.fps.value() == 0.5


def test_the_connection_dialog_keeps_every_setting_and_refuses_a_bad_address(qtbot):
    from anyi2v.desktop.models.connection import ConnectionSettings
    from anyi2v.desktop.qt.connection_dialog import ConnectionDialog

    chosen = ConnectionSettings("local", model="/models/sd15", device="cuda:1", low_memory=True)
    dialog = ConnectionDialog(chosen)
    qtbot.addWidget(dialog)
    assert dialog.settings() == chosen
    dialog.low_memory.setChecked(False)
    assert dialog.settings().low_memory is False
    dialog.remote.setChecked(True)
    dialog.address.setText("gpu-box:5557")
    dialog._accept()
    assert "tcp://HOST:PORT" in dialog.problem.text()
    assert dialog.result() == 0  # still open
