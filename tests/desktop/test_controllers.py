"""The studio's controllers driven alone, without a window: the document controller's edits, undo,
dirty state, unsaved-changes decisions and saves; the condition controller's newest-wins rendering;
the jobs controller's generate, cancel and events; the results controller's history and export.
Renderers and sessions are stand-ins where the real ones would only cost time (the real ones are
covered by test_connection, test_widgets and the end-to-end test)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from anyi2v.desktop.models.connection import ConnectionStatus, DaemonSession, JobResult
from anyi2v.desktop.models.edits import EditError
from anyi2v.desktop.models.files import ResultHistory
from anyi2v.shared.document import load_shot
from tests.conftest import EXAMPLES

WAIT_MS = 30_000  # generous: the machine may be busy


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "shots"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.results"))
    return folder


@pytest.fixture
def documents(qtbot, studio_home: Path):
    from anyi2v.desktop.qt.document_controller import DocumentController

    return DocumentController(studio_home / "config" / "studio.json")


def record(signal) -> list:
    """Every emission of ``signal``, its arguments as a tuple (one value as itself)."""
    seen: list = []
    signal.connect(lambda *args: seen.append(args[0] if len(args) == 1 else args))
    return seen


class GatedRenderer:
    """Stands in for ConditionRenderer: a render returns at once, or waits for ``gate`` when its
    shot is in ``held``. Each result names the request it answers."""

    def __init__(self, held: tuple[object, ...] = ()) -> None:
        self.held, self.gate = list(held), threading.Event()  # lists: shots compare by value, unhashed
        self.started: list[object] = []
        self.fail: list[object] = []

    def render(self, shot, base_dir):
        self.started.append(shot)
        if shot in self.held:
            assert self.gate.wait(60), "the test never opened the gate"
        if shot in self.fail:
            raise ValueError(f"cannot render {shot}")
        tracks = getattr(shot, "tracks", ())
        return SimpleNamespace(
            name=shot, image=np.full((128, 128, 3), 0.5), object_boxes={}, tracks=tracks, warnings=()
        )


def wait_for_threads(qtbot, name: str) -> None:
    """Wait until no thread called ``name`` runs, then let the GUI thread take what they queued."""
    qtbot.waitUntil(lambda: not any(t.name == name and t.is_alive() for t in threading.enumerate()), timeout=WAIT_MS)
    qtbot.wait(50)


# The document controller --------------------------------------------------------------------------


def test_an_edit_is_applied_undone_and_redone_and_the_document_knows_it_is_dirty(documents, shots):
    shown, titles = record(documents.sig_shot_shown), record(documents.sig_title_changed)
    assert documents.open_path(shots / "demo.json")
    assert shown[-1] == documents.shot
    assert not documents.document.dirty
    assert titles[-1] == "demo.json"
    assert documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "changed"}))
    assert documents.shot.prompt == "changed"
    assert shown[-1].prompt == "changed"
    assert documents.document.dirty
    assert titles[-1] == "demo.json *"
    documents.undo_stack.undo()
    assert documents.shot.prompt != "changed"
    assert shown[-1] == documents.shot
    assert not documents.document.dirty
    assert titles[-1] == "demo.json"
    documents.undo_stack.redo()
    assert documents.shot.prompt == "changed"


def test_a_refused_edit_says_why_and_an_edit_that_changes_nothing_is_not_a_step(documents, shots):
    errors, unchanged = record(documents.sig_error), record(documents.sig_edit_unchanged)
    assert not documents.apply("Anything", lambda shot: shot)  # no shot open: nothing happens
    assert documents.open_path(shots / "demo.json")
    before = documents.shot

    def refuse(shot):
        raise EditError("frames: too few")

    assert not documents.apply("Set frames", refuse)
    assert errors == ["Set frames: frames: too few"]
    assert not documents.apply("Set prompt", lambda shot: shot)
    assert unchanged == [before]
    assert documents.shot == before
    assert documents.undo_stack.count() == 0


def test_keys_selected_with_an_edit_come_back_with_its_undo(documents, shots):
    assert documents.open_path(shots / "demo.json")
    documents.selection.set({("torus", 15)})
    documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "changed"}))
    documents.selection.set(set())
    documents.undo_stack.undo()
    assert documents.selection.keys == {("torus", 15)}


def test_save_as_to_another_folder_keeps_relative_paths_on_the_same_files(documents, shots, tmp_path):
    assert documents.open_path(shots / "camera_pan.json")  # an image layer, by a relative path
    image = (shots / documents.shot.conditions[0].source.path).resolve()
    documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "first"}))
    target = tmp_path / "elsewhere" / "deep" / "pan.json"
    target.parent.mkdir(parents=True)
    offered, pending, saved = [], record(documents.sig_commit_pending_requested), record(documents.sig_saved)
    documents.ask_save_path = lambda start: offered.append(start) or target
    assert documents.save_as()
    assert offered == [shots.resolve() / "shot.json"]
    assert pending  # typed text is committed before the shot is written
    assert saved == [(target.resolve(), (shots / "camera_pan.json").resolve())]
    written = load_shot(target)
    assert written.prompt == "first"
    assert (target.parent / written.conditions[0].source.path).resolve() == image
    assert not documents.document.dirty
    assert documents.config.recent[0] == str(target.resolve())
    documents.undo_stack.undo()  # the shot before the edit, rebased too
    assert (target.parent / documents.shot.conditions[0].source.path).resolve() == image
    assert documents.save_to(tmp_path / "no-suffix")
    assert (tmp_path / "no-suffix.json").is_file()


def test_when_unsaved_changes_are_asked_about_and_what_the_answer_does(documents, shots):
    from PySide6.QtWidgets import QMessageBox

    buttons = QMessageBox.StandardButton
    asked: list[str] = []

    def answer(button):
        documents.ask_unsaved = lambda question: asked.append(question) or button

    answer(buttons.Cancel)
    assert documents.confirm_discard()  # no shot
    assert documents.open_path(shots / "assets" / "torus.obj")  # a new, untitled shot, no edits yet
    assert documents.confirm_discard()
    assert asked == []
    assert documents.open_path(shots / "demo.json")
    assert documents.confirm_discard()
    assert asked == []
    documents.apply("Set prompt", lambda shot: shot.model_copy(update={"prompt": "kept"}))
    assert not documents.confirm_discard()
    assert asked == ["Save the changes to demo.json?"]
    assert not documents.open_path(shots / "camera_pan.json")  # cancelled: the shot stays open
    assert documents.document.path == (shots / "demo.json").resolve()
    answer(buttons.Discard)
    assert documents.confirm_discard()
    assert load_shot(shots / "demo.json").prompt != "kept"
    answer(buttons.Save)
    assert documents.confirm_discard()
    assert load_shot(shots / "demo.json").prompt == "kept"
    assert not documents.document.dirty


def test_a_recent_file_that_is_gone_leaves_the_list(documents, shots):
    recent = record(documents.sig_recent_changed)
    assert documents.open_path(shots / "demo.json")
    assert recent[-1] == [str((shots / "demo.json").resolve())]
    (shots / "demo.json").unlink()
    errors = record(documents.sig_error)
    assert not documents.open_path(shots / "demo.json")
    assert "no longer exists" in errors[0]
    assert recent[-1] == []
    assert json.loads(documents.config_path.read_text())["recent"] == []


# The condition controller -------------------------------------------------------------------------


def test_the_newest_render_wins_and_renders_of_a_previous_shot_are_dropped(qtbot, tmp_path):
    from anyi2v.desktop.qt.condition_controller import ConditionController

    renderer = GatedRenderer(held=("a", "d"))
    renders = ConditionController(renderer)
    try:
        rendered, busy = record(renders.sig_rendered), record(renders.sig_busy_changed)
        renders.request("a", tmp_path)
        qtbot.waitUntil(lambda: renderer.started == ["a"], timeout=WAIT_MS)
        renders.request("b", tmp_path)
        renders.request("c", tmp_path)  # replaces b, which waits: b is never rendered
        renderer.gate.set()
        qtbot.waitUntil(lambda: [r.name for r in rendered] == ["a", "c"], timeout=WAIT_MS)
        assert renderer.started == ["a", "c"]
        assert busy[-1] is False
        assert renders.conditions.name == "c"
        assert renders.condition_image.dtype == np.uint8
        assert renders.condition_image.max() == 128

        renderer.gate.clear()
        renders.request("d", tmp_path)
        qtbot.waitUntil(lambda: renderer.started[-1] == "d", timeout=WAIT_MS)
        renders.reset()  # another shot was opened while d renders
        assert renders.conditions is None
        assert renders.condition_image is None
        renders.request("e", tmp_path)
        renderer.gate.set()
        qtbot.waitUntil(lambda: rendered[-1].name == "e", timeout=WAIT_MS)
        qtbot.waitUntil(renders.render_worker.idle, timeout=WAIT_MS)
        qtbot.wait(50)
        assert [r.name for r in rendered] == ["a", "c", "e"]  # d finished, but was dropped

        errors = record(renders.sig_error)
        renderer.fail.append("f")
        renders.request("f", tmp_path)
        qtbot.waitUntil(lambda: errors != [], timeout=WAIT_MS)
        assert errors == ["The condition could not be rendered: cannot render f"]
        assert renders.conditions.name == "e"  # the last good render stays shown
    finally:
        renders.close()


def test_a_shot_is_rendered_again_only_when_what_the_condition_depends_on_changes(qtbot, tmp_path):
    from anyi2v.desktop.qt.condition_controller import ConditionController

    renders = ConditionController(GatedRenderer())
    try:
        shot = load_shot(EXAMPLES / "demo.json")
        renders.shot_shown(shot, tmp_path)
        assert renders.render_worker.latest == 1
        renders.shot_shown(shot.model_copy(update={"prompt": "another"}), tmp_path)  # not in the condition
        assert renders.render_worker.latest == 1
        renders.shot_shown(shot.model_copy(update={"output": shot.output.model_copy(update={"width": 64})}), tmp_path)
        assert renders.render_worker.latest == 2
        renders.reset()
        renders.shot_shown(shot, tmp_path)  # a new shot renders, even with the same inputs
        assert renders.render_worker.latest == 3
    finally:
        renders.close()


def test_what_loading_the_scene_changed_is_said_once_per_new_set_of_warnings(qtbot, tmp_path):
    from anyi2v.desktop.models.files import shot_for_file
    from anyi2v.desktop.qt.condition_controller import ConditionController
    from tests.render.test_scan_formats import _grid_with_holes, organized_pcd

    (tmp_path / "scan.pcd").write_bytes(organized_pcd(4, 3, _grid_with_holes()))
    shot = shot_for_file(tmp_path / "scan.pcd")
    renders = ConditionController()  # the real renderer: the warning comes from loading the file
    try:
        warned, rendered = record(renders.sig_warning), record(renders.sig_rendered)
        renders.request(shot, tmp_path)
        qtbot.waitUntil(lambda: len(rendered) == 1, timeout=WAIT_MS)
        assert len(warned) == 1
        assert warned[0].startswith("Loading the scene: ")
        assert "4 of its 12 points" in warned[0]
        renders.request(shot.model_copy(update={"prompt": "again"}), tmp_path)
        qtbot.waitUntil(lambda: len(rendered) == 2, timeout=WAIT_MS)
        assert len(warned) == 1  # the same warnings are not said on every render
        renders.reset()
        renders.request(shot, tmp_path)  # the shot opened again: said again
        qtbot.waitUntil(lambda: len(rendered) == 3, timeout=WAIT_MS)
        assert len(warned) == 2
    finally:
        renders.close()


# The jobs controller ------------------------------------------------------------------------------


class FakeSession:
    """Stands in for a DaemonSession: records the jobs sent and keeps their callbacks."""

    def __init__(self):
        self.jobs, self.cancelled, self.callbacks = [], [], {}

    def run_job(self, job_id, document, condition, folder, on_event, on_result, on_error):
        self.jobs.append(job_id)
        self.callbacks[job_id] = (folder, on_event, on_result, on_error)

    def cancel(self, job_id, on_error):
        self.cancelled.append(job_id)

    def stop(self, timeout=0.0):
        pass


def connected_jobs(renderer, session):
    from anyi2v.desktop.qt.jobs_controller import JobsController

    jobs = JobsController(renderer)
    jobs.session = session
    jobs.set_status(ConnectionStatus("connected", "tcp://127.0.0.1:1", "toy-world", "cpu"))
    return jobs


def test_a_cancel_while_preparing_sends_nothing_and_each_generate_is_a_new_job(qtbot, tmp_path):
    shot = load_shot(EXAMPLES / "demo.json")
    renderer, session = GatedRenderer(held=(shot,)), FakeSession()
    jobs = connected_jobs(renderer, session)
    history = ResultHistory(tmp_path / "demo.json")
    sent = record(jobs.sig_condition_sent)
    job = jobs.generate(shot, EXAMPLES, history)
    assert job is jobs.job
    assert job.state == "preparing"
    assert jobs.running
    jobs.cancel()
    assert job.state == "cancelled"
    assert not jobs.running
    renderer.gate.set()  # the condition is rendered after the cancel: it must not be sent
    wait_for_threads(qtbot, "anyi2v-studio-preparing the job")
    assert session.jobs == []
    assert sent == []

    renderer.held.clear()
    jobs.generate(shot, EXAMPLES, history)
    qtbot.waitUntil(lambda: len(session.jobs) == 1, timeout=WAIT_MS)
    assert sent[0].shape == (128, 128, 3)
    assert sent[0].dtype == np.uint8
    assert session.callbacks[session.jobs[0]][0].parent == tmp_path / "demo.results"
    errors = record(jobs.sig_error)
    assert jobs.generate(shot, EXAMPLES, history) is None  # one at a time
    assert errors == ["Generate: a generation is running; cancel it first"]
    jobs.job.state = "failed"  # as a failed job ends
    jobs.generate(shot, EXAMPLES, history)  # again, unchanged: a new id, or the daemon answers the old job
    qtbot.waitUntil(lambda: len(session.jobs) == 2, timeout=WAIT_MS)
    first, second = session.jobs
    assert first != second
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]  # the same shot and condition
    jobs.cancel()
    assert session.cancelled == [second]


def test_no_generate_without_a_shot_or_a_connected_daemon(qtbot, studio_home, tmp_path):
    from anyi2v.desktop.qt.jobs_controller import JobsController

    jobs = JobsController(GatedRenderer())
    errors = record(jobs.sig_error)
    assert jobs.generate(None, tmp_path, ResultHistory(None)) is None
    assert jobs.generate(load_shot(EXAMPLES / "demo.json"), tmp_path, ResultHistory(None)) is None
    assert errors[0] == "Generate: open a shot, a mesh or an image first"
    assert errors[1].startswith("Generate: no daemon yet")
    assert jobs.job is None


def test_events_from_the_session_thread_fold_into_frames_on_the_gui_thread(qtbot, tmp_path):
    shot = load_shot(EXAMPLES / "demo.json")
    session = FakeSession()
    jobs = connected_jobs(GatedRenderer(), session)
    frames, changes, done = record(jobs.sig_frame), record(jobs.sig_job_changed), record(jobs.sig_job_done)
    threads: list[str] = []
    jobs.sig_job_changed.connect(lambda _: threads.append(threading.current_thread().name))
    job = jobs.generate(shot, EXAMPLES, ResultHistory(tmp_path / "demo.json"))
    qtbot.waitUntil(lambda: len(session.jobs) == 1, timeout=WAIT_MS)
    job_id = session.jobs[0]
    folder, on_event, on_result, _on_error = session.callbacks[job_id]
    n_frames, width, height = shot.output.n_frames, shot.output.width, shot.output.height

    def daemon_side():  # what the session's thread does as the daemon streams
        for index in range(n_frames):
            content = SimpleNamespace(seq=index, index=index, width=width, height=height)
            pixels = np.full((height, width, 3), index, np.uint8).tobytes()
            on_event(SimpleNamespace(type="frame", content=content, buffers=(pixels,)))
        on_event(SimpleNamespace(type="done", content=SimpleNamespace(seq=n_frames), buffers=()))
        on_result(JobResult(job_id, folder, {}))

    stray = threading.Thread(target=daemon_side, name="fake-session-job")
    stray.start()
    stray.join(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: done != [], timeout=WAIT_MS)
    assert [index for index, _ in frames] == list(range(n_frames))
    assert frames[3][1][0, 0, 0] == 3
    assert job.frames_received == n_frames
    assert job.state == "done"
    assert done[0].folder == folder
    assert changes[-1] is job
    assert set(threads) == {threading.main_thread().name}  # never on the session's thread


def test_a_job_thread_that_dies_reports_it(qtbot, tmp_path):
    class BrokenClient:
        def submit(self, *args, **kwargs):
            raise RuntimeError("boom")

        def close(self):
            pass

    session = DaemonSession("tcp://127.0.0.1:1", None, lambda status: None)
    session._client = BrokenClient  # the job's thread dies on its first call
    jobs = connected_jobs(GatedRenderer(), session)
    errors = record(jobs.sig_error)
    job = jobs.generate(load_shot(EXAMPLES / "demo.json"), EXAMPLES, ResultHistory(tmp_path / "demo.json"))
    qtbot.waitUntil(lambda: job.finished, timeout=WAIT_MS)
    assert job.state == "failed"
    assert "lost track of the job (RuntimeError: boom)" in job.message
    assert errors == [job.message]
    assert not jobs.running


# The results controller ---------------------------------------------------------------------------


def make_result(folder: Path, shot, n_frames: int = 4, fps: float = 12.0) -> None:
    (folder / "frames").mkdir(parents=True)
    for index in range(n_frames):
        Image.fromarray(np.full((128, 128, 3), 60 * index, np.uint8)).save(folder / "frames" / f"{index:04d}.png")
    (folder / "manifest.json").write_text(json.dumps({"job_id": f"studio-{folder.name}", "n_frames": n_frames}))
    made_with = shot.model_copy(update={"output": shot.output.model_copy(update={"fps": fps})})
    (folder / "shot.json").write_text(made_with.model_dump_json())
    Image.fromarray(np.full((128, 128, 3), 7, np.uint8)).save(folder / "condition.png")


@pytest.fixture
def results(documents):
    from anyi2v.desktop.qt.jobs_controller import JobsController
    from anyi2v.desktop.qt.results_controller import ResultsController

    return ResultsController(documents, JobsController(GatedRenderer()))


def test_the_history_is_listed_off_the_gui_thread_and_a_chosen_result_exports(
    qtbot, documents, results, shots, tmp_path, monkeypatch
):
    import av

    assert documents.open_path(shots / "demo.json")
    folder = shots / "demo.results" / "20261122-101010-abcd1234"
    make_result(folder, documents.shot)
    listed_on: list[str] = []
    entries = ResultHistory.entries
    monkeypatch.setattr(ResultHistory, "entries", lambda self: listed_on.append(threading.current_thread().name)
                        or entries(self))  # fmt: skip
    listed, shown = record(results.sig_history_listed), record(results.sig_result_shown)
    results.load_history()
    qtbot.waitUntil(lambda: listed != [], timeout=WAIT_MS)
    (found, select), *_ = listed
    assert [entry.folder for entry in found] == [folder]
    assert select is None
    assert listed_on
    assert threading.main_thread().name not in listed_on

    assert results.export_result(tmp_path / "none.mp4") is None  # nothing shown yet
    results.pick(folder)
    qtbot.waitUntil(lambda: shown != [], timeout=WAIT_MS)
    assert len(results.result_frames()) == 4
    assert results.result_folder == folder
    assert results.result_shot().output.fps == 12.0  # the result's own shot, not the open one
    assert results.result_condition[0, 0, 0] == 7  # compared with the condition it was made from

    target = tmp_path / "old.mp4"
    infos = record(results.sig_info)
    results.export_result(target).join(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: infos != [], timeout=WAIT_MS)
    assert infos == [f"Exported {target} (4 frames, with the shot beside it)"]
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 12
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == 4
    assert abs(int(decoded[2].mean()) - 120) < 12  # the third frame, lossy but the same
    png = tmp_path / "frames"
    results.export_result(png, "png").join(WAIT_MS / 1000)
    qtbot.waitUntil(lambda: len(infos) == 2, timeout=WAIT_MS)
    assert len(list(png.glob("*.png"))) == 4


def test_a_listing_of_a_shot_no_longer_open_is_dropped(qtbot, documents, results, shots, monkeypatch):
    assert documents.open_path(shots / "demo.json")
    make_result(shots / "demo.results" / "20261122-101010-abcd1234", documents.shot)
    gate, entries = threading.Event(), ResultHistory.entries
    monkeypatch.setattr(ResultHistory, "entries", lambda self: gate.wait(60) and entries(self))
    listed = record(results.sig_history_listed)
    results.load_history()  # demo's listing waits at the gate
    assert documents.open_path(shots / "camera_pan.json")
    results.reset()  # as the window does for another shot
    gate.set()
    wait_for_threads(qtbot, "anyi2v-studio-listing the results")
    assert listed == [([], None)]  # camera_pan has no results; demo's listing came too late


def test_a_finished_job_keeps_its_condition_and_is_selected_in_the_history(qtbot, documents, results, shots):
    assert documents.open_path(shots / "demo.json")
    folder = shots / "demo.results" / "20261122-101010-abcd1234"
    make_result(folder, documents.shot)
    (folder / "condition.png").unlink()
    listed = record(results.sig_history_listed)
    sent = np.full((128, 128, 3), 33, np.uint8)
    results.jobs.sig_condition_sent.emit(sent)  # what the jobs controller announces as it submits
    results.jobs.sig_job_done.emit(JobResult("studio-x", folder, {}))
    assert results.result_folder == folder
    qtbot.waitUntil(lambda: listed != [] and (folder / "condition.png").is_file(), timeout=WAIT_MS)
    assert listed[-1][1] == folder
    wait_for_threads(qtbot, "anyi2v-studio-keeping the condition with the result")
    assert np.asarray(Image.open(folder / "condition.png"))[0, 0, 0] == 33


def test_an_untitled_shots_results_follow_it_on_its_first_save(qtbot, documents, results, shots, tmp_path):
    assert documents.open_path(shots / "assets" / "torus.obj")  # untitled
    untitled = ResultHistory(None, documents.document.key)
    make_result(untitled.root / "20261122-101010-abcd1234", documents.shot)
    listed = record(results.sig_history_listed)
    assert documents.save_to(tmp_path / "torus.json")
    qtbot.waitUntil(lambda: listed != [] and listed[-1][0] != [], timeout=WAIT_MS)
    (entry,) = listed[-1][0]
    assert entry.folder == tmp_path.resolve() / "torus.results" / "20261122-101010-abcd1234"
    assert not untitled.root.exists()


# The edit controller ------------------------------------------------------------------------------


def test_edits_land_at_the_playhead_and_select_what_they_made(qtbot, documents, shots):
    from anyi2v.desktop.models.timeline import Playback
    from anyi2v.desktop.qt.condition_controller import ConditionController
    from anyi2v.desktop.qt.edit_controller import EditController

    renders = ConditionController(GatedRenderer())
    playback = Playback(16, 8.0)
    editor = EditController(documents, renders, playback)
    try:
        errors, selected = record(editor.sig_error), record(editor.sig_track_selected)
        assert documents.open_path(shots / "demo.json")
        editor.insert_key()
        assert errors == ["Insert key: select a track first (click its box or its row)"]
        playback.set_frame(5)
        editor.add_track((0.1, 0.1, 0.3, 0.3))
        (new,) = [t for t in documents.shot.tracks if t.id != "torus"]
        assert [k.frame for k in new.keyframes] == [5]
        assert selected == [new.id]
        editor.select_track("torus")
        editor.insert_key()
        assert [k.frame for k in documents.shot.tracks[0].keyframes] == [0, 5, 15]
        editor.move_keys({("torus", 5)}, 2)
        assert documents.selection.keys == {("torus", 7)}
        documents.undo_stack.undo()
        documents.undo_stack.undo()
        assert [k.frame for k in documents.shot.tracks[0].keyframes] == [0, 15]
        documents.undo_stack.undo()  # the new track goes; the selected one stays
        assert editor.selected_track == "torus"
        assert len(documents.shot.tracks) == 1
        editor.select_track(new.id)
        documents.show(documents.shot)  # a shot without the selected track: none is selected
        assert editor.selected_track is None
    finally:
        renders.close()
