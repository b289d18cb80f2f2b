"""The studio's Qt-free models: edits, undo values, the timeline, the overlay, jobs, forms, workers."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from anyi2v.desktop.models import edits
from anyi2v.desktop.models.condition import LatestWins, OrbitCamera
from anyi2v.desktop.models.document import ShotDocument
from anyi2v.desktop.models.edits import EditError
from anyi2v.desktop.models.form import field_specs
from anyi2v.desktop.models.job import JobProgress
from anyi2v.desktop.models.overlay import Hit, box_between, boxes_at, drag_box, hit_test, object_at, track_paths
from anyi2v.desktop.models.timeline import KeySelection, Playback, TimelineScale, timeline_rows
from anyi2v.shared.document import load_shot
from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.shot import Camera
from anyi2v.shared.tracks import sample_track
from tests.conftest import EXAMPLES


@pytest.fixture
def shot():
    return load_shot(EXAMPLES / "demo.json")  # one track "torus", keys at 0 and 15, 16 frames


def keys(shot, track_id="torus"):
    return [(k.frame, k.box, k.interpolation) for t in shot.tracks if t.id == track_id for k in t.keyframes]


# Edits ------------------------------------------------------------------------------------------


def test_set_key_adds_a_key_with_the_previous_interpolation_then_updates_it(shot):
    linear = edits.set_interpolation(shot, {("torus", 0)}, "linear")
    added = edits.set_key(linear, "torus", 7, (0.2, 0.2, 0.5, 0.5))
    assert [frame for frame, _, _ in keys(added)] == [0, 7, 15]
    assert keys(added)[1] == (7, (0.2, 0.2, 0.5, 0.5), "linear")
    moved = edits.set_key(added, "torus", 7, (0.3, 0.2, 0.6, 0.5))
    assert keys(moved)[1][1] == (0.3, 0.2, 0.6, 0.5)
    assert len(keys(moved)) == 3
    assert sample_track(moved.tracks[0], 16)[7].tolist() == pytest.approx([0.3, 0.2, 0.6, 0.5])
    assert keys(shot) == keys(load_shot(EXAMPLES / "demo.json"))  # the original value is untouched


def test_an_edit_outside_the_clip_or_of_an_unknown_track_is_refused_with_a_reason(shot):
    with pytest.raises(EditError, match=r"frame 16 is outside the clip \(frames 0..15\)"):
        edits.set_key(shot, "torus", 16, (0.1, 0.1, 0.2, 0.2))
    with pytest.raises(EditError, match="there is no track 'ghost'"):
        edits.set_key(shot, "ghost", 3, (0.1, 0.1, 0.2, 0.2))
    with pytest.raises(EditError, match="x0"):
        edits.set_key(shot, "torus", 3, (5.0, 0.1, 6.0, 0.2))


def test_add_track_gets_a_fresh_id_and_remove_takes_it_away(shot):
    added, track_id = edits.add_track(shot, 4, (0.6, 0.1, 0.9, 0.4))
    assert track_id == "track-1"
    again, second = edits.add_track(added, 0, (0.1, 0.1, 0.2, 0.2))
    assert second == "track-2"
    assert [t.id for t in edits.remove_tracks(again, ["track-1"]).tracks] == ["torus", "track-2"]


def test_a_track_seeded_from_a_scene_object_is_named_after_it(shot):
    seeded, track_id = edits.add_track(shot, 0, (0.1, 0.2, 0.5, 0.6), label="Red Car.001")
    assert track_id == "Red-Car.001"
    assert seeded.tracks[-1].label == "Red Car.001"
    _, taken = edits.add_track(seeded, 0, (0.1, 0.2, 0.5, 0.6), label="Red Car.001")
    assert taken == "Red-Car.001-1"  # the name is taken: numbered
    _, odd = edits.add_track(shot, 0, (0.1, 0.2, 0.5, 0.6), label="???")
    assert odd == "track-1"  # nothing of the name is a valid id


def test_object_at_picks_the_smallest_box_that_holds_the_point():
    boxes = {"room": (0.0, 0.0, 1.0, 1.0), "cup": (0.4, 0.4, 0.6, 0.6), "car": (0.7, 0.1, 0.9, 0.3)}
    assert object_at(boxes, (0.5, 0.5)) == "cup"
    assert object_at(boxes, (0.8, 0.2)) == "car"
    assert object_at(boxes, (0.1, 0.9)) == "room"
    assert object_at({"cup": (0.4, 0.4, 0.6, 0.6)}, (0.1, 0.1)) is None


def test_deleting_every_key_of_a_track_removes_the_track(shot):
    one = edits.delete_keys(shot, {("torus", 15)})
    assert [frame for frame, _, _ in keys(one)] == [0]
    assert edits.delete_keys(one, {("torus", 0)}).tracks == ()


def test_move_keys_overwrites_the_key_it_lands_on_and_never_leaves_the_clip(shot):
    three = edits.set_key(shot, "torus", 8, (0.3, 0.3, 0.6, 0.6))
    moved = edits.move_keys(three, {("torus", 8)}, 7)  # onto frame 15
    assert [(f, b) for f, b, _ in keys(moved)] == [(0, (0.04, 0.33, 0.41, 0.68)), (15, (0.3, 0.3, 0.6, 0.6))]
    with pytest.raises(EditError, match="leaves the clip"):
        edits.move_keys(three, {("torus", 15)}, 1)


def test_copy_and_paste_keys_keep_their_spacing(shot):
    clipboard = edits.copy_keys(shot, {("torus", 0), ("torus", 15)})
    assert [key.offset for key in clipboard] == [0, 15]
    with pytest.raises(EditError, match="past the clip's end"):
        edits.paste_keys(shot, clipboard, 1)
    single = edits.copy_keys(shot, {("torus", 15)})
    added, other = edits.add_track(shot, 0, (0.1, 0.1, 0.3, 0.3))
    pasted = edits.paste_keys(added, single, 6, into=other)
    assert keys(pasted, other)[1] == (6, (0.55, 0.33, 0.92, 0.68), "smooth")


def test_shrinking_the_clip_is_refused_while_keys_lie_past_its_end(shot):
    with pytest.raises(EditError, match="track 'torus' has a key at frame 15"):
        edits.set_frame_count(shot, 12)
    assert edits.set_frame_count(shot, 24).output.n_frames == 24


def test_query_points_must_be_inside_the_first_box(shot):
    with_point = edits.add_query_point(shot, "torus", (0.2, 0.5))
    assert with_point.tracks[0].query_points == ((0.2, 0.5),)
    with pytest.raises(EditError, match="inside 'torus'"):
        edits.add_query_point(shot, "torus", (0.9, 0.9))


def test_set_value_validates_like_a_loaded_file(shot):
    assert edits.set_value(shot, ("sampling", "steps"), 3).sampling.steps == 3
    with pytest.raises(EditError) as refused:
        edits.set_value(shot, ("sampling", "steps"), 0)
    assert str(refused.value) == "sampling.steps: input should be greater than or equal to 1"  # named once
    with pytest.raises(EditError, match=r"multiple of 8 \(the nearest is 336\)"):
        edits.set_value(shot, ("output", "width"), 333)
    assert edits.set_value(shot, ("method", "pca_components"), None).method.pca_components is None
    assert edits.set_track(shot, "torus", role="anchor").tracks[0].role == "anchor"


def test_set_camera_moves_the_scene_camera(shot):
    moved = edits.set_camera(shot, (0.0, 1.0, 3.0), (0.0, 0.0, 0.0), 40.0)
    assert moved.scene.camera.eye == (0.0, 1.0, 3.0)
    assert moved.scene.camera.fov_deg == 40.0


# The document -----------------------------------------------------------------------------------


def test_document_is_dirty_after_an_edit_and_clean_after_saving(shot, tmp_path):
    path = tmp_path / "copy.json"
    document = ShotDocument(shot, None, EXAMPLES)
    assert document.dirty
    document.save(path)
    assert not document.dirty
    assert not Path(document.shot.scene.path).is_absolute()
    assert (path.parent / document.shot.scene.path).resolve() == (EXAMPLES / "assets" / "torus.obj").resolve()
    reopened = ShotDocument.open(path)
    assert reopened.shot == document.shot
    changes = []
    document.changed.connect(changes.append)
    document.replace(edits.set_value(document.shot, ("prompt",), "a blue torus"))
    assert document.dirty
    assert len(changes) == 1
    assert document.title == "copy.json *"


# Timeline ---------------------------------------------------------------------------------------


def test_timeline_rows_show_keys_with_their_interpolation_glyph_and_selection(shot):
    shot = edits.set_interpolation(edits.set_key(shot, "torus", 5, (0.2, 0.3, 0.5, 0.6)), {("torus", 5)}, "constant")
    shot = edits.set_interpolation(shot, {("torus", 0)}, "linear")
    (row,) = timeline_rows(shot, {("torus", 5)})
    assert [(k.frame, k.glyph, k.selected) for k in row.keys] == [
        (0, "diamond", False),
        (5, "square", True),
        (15, "circle", False),
    ]


@pytest.mark.parametrize("n_frames", [2, 16, 31])
def test_timeline_scale_maps_each_frame_centre_back_to_its_frame(n_frames):
    scale = TimelineScale(n_frames, width=700.0, left=150.0)
    assert [scale.frame_at(scale.x(f)) for f in range(n_frames)] == list(range(n_frames))
    assert scale.frame_at(0.0) == 0
    assert scale.frame_at(10_000.0) == n_frames - 1


def test_key_selection_click_extend_and_prune(shot):
    selection = KeySelection()
    seen = []
    selection.changed.connect(seen.append)
    selection.click(("torus", 0), extend=False)
    selection.click(("torus", 15), extend=True)
    assert selection.keys == {("torus", 0), ("torus", 15)}
    selection.click(("torus", 0), extend=True)
    assert selection.keys == {("torus", 15)}
    selection.prune(edits.delete_keys(shot, {("torus", 15)}))
    assert selection.keys == frozenset()
    assert len(seen) == 4


def test_playback_loops_or_stops_at_the_end():
    playback = Playback(4, 8.0, loop=True)
    frames = []
    playback.frame_changed.connect(frames.append)
    playback.set_playing(True)
    for _ in range(5):
        playback.tick()
    assert frames == [1, 2, 3, 0, 1]
    playback.loop = False
    playback.set_frame(3)
    playback.tick()
    assert not playback.playing
    playback.set_playing(True)  # from the last frame: starts over
    assert playback.frame == 0
    assert playback.interval_ms == 125


# Overlay ----------------------------------------------------------------------------------------


def test_hit_test_finds_corners_edges_and_insides_and_prefers_the_selected_track():
    boxes = {"big": (0.1, 0.1, 0.9, 0.9), "small": (0.4, 0.4, 0.6, 0.6), "twin": (0.1, 0.1, 0.5, 0.5)}
    tolerance = (0.01, 0.01)
    assert hit_test(boxes, (0.9, 0.5), tolerance).handle == "right"
    assert hit_test(boxes, (0.1, 0.1), tolerance) == Hit("twin", "top_left")  # shared corner: the smaller
    assert hit_test(boxes, (0.1, 0.1), tolerance, prefer="big") == Hit("big", "top_left")  # unless selected
    # inside, the smallest box wins even when a bigger one is selected: nested boxes stay reachable
    assert hit_test(boxes, (0.55, 0.55), tolerance, prefer="big") == Hit("small", "move")
    assert hit_test(boxes, (0.7, 0.7), tolerance, prefer="small") == Hit("big", "move")
    assert hit_test(boxes, (0.95, 0.95), tolerance) is None


def test_the_middle_of_a_tiny_box_moves_it():
    tiny = {"tiny": (0.5, 0.5, 0.52, 0.52)}
    assert hit_test(tiny, (0.51, 0.51), (0.012, 0.012)) == Hit("tiny", "move")
    assert hit_test(tiny, (0.5, 0.5), (0.012, 0.012)).handle == "top_left"


def test_drag_box_moves_and_resizes_without_inverting():
    box = (0.2, 0.2, 0.4, 0.4)
    assert drag_box(box, "move", (0.1, -0.1)) == pytest.approx((0.3, 0.1, 0.5, 0.3))
    assert drag_box(box, "right", (0.1, 0.0)) == pytest.approx((0.2, 0.2, 0.5, 0.4))
    shrunk = drag_box(box, "bottom_right", (-0.5, -0.5))
    assert shrunk == pytest.approx((0.2, 0.2, 0.22, 0.22))  # the minimum size, never inside out
    # a move keeps a sliver (0.05) in the frame, so the box can be grabbed again
    assert drag_box(box, "move", (5.0, 0.0)) == pytest.approx((0.95, 0.2, 1.15, 0.4))
    assert drag_box(box, "move", (0.0, -5.0)) == pytest.approx((0.2, -0.15, 0.4, 0.05))


def test_box_between_ignores_clicks_and_clips_to_the_image():
    assert box_between((0.5, 0.5), (0.505, 0.505)) is None
    assert box_between((0.8, 0.9), (1.3, 0.2)) == (0.8, 0.2, 1.0, 0.9)


def test_track_paths_and_boxes_follow_the_sampled_track(shot):
    (path,) = track_paths(shot)
    sampled = sample_track(shot.tracks[0], 16)
    assert path.key_frames == (0, 15)
    assert path.centres[7] == pytest.approx([(sampled[7, 0] + sampled[7, 2]) / 2, (sampled[7, 1] + sampled[7, 3]) / 2])
    assert boxes_at(shot, 15)["torus"] == pytest.approx((0.55, 0.33, 0.92, 0.68))


# Jobs -------------------------------------------------------------------------------------------


def event(kind, seq, **content):
    return kind, SimpleNamespace(seq=seq, job_id="j", **content)


def test_job_progress_folds_events_in_order_and_ignores_replays():
    job = JobProgress("j", 2)
    frame = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(2, 4, 3)
    strip = np.zeros((2, 8, 3), dtype=np.uint8)
    strip[:, 4:] = 200
    job.apply(*event("accepted", 0, n_frames=2))
    job.apply(*event("queued", 1, position=2, attempt=1))
    assert job.status_line == "Queued: 2 jobs ahead"
    job.apply(*event("started", 2, attempt=1))
    job.apply(*event("preview", 3, stage="sampling", done=1, total=3, width=8, height=2), (strip.tobytes(),))
    assert [int(p.max()) for p in job.previews] == [0, 200]
    assert job.status_line == "Sampling 1/3"
    job.apply(*event("frame", 4, index=1, width=4, height=2), (frame.tobytes(),))
    job.apply(*event("frame", 4, index=0, width=4, height=2), (frame.tobytes(),))  # a replay: ignored
    assert job.frames_received == 1
    assert np.array_equal(job.frames[1], frame)
    job.apply(*event("failed", 5, reason="out_of_memory", message="the GPU ran out of memory", hints=["fewer frames"]))
    assert job.finished
    assert job.status_line == "Failed: the GPU ran out of memory"
    assert job.hints == ("fewer frames",)


def test_a_frame_of_the_wrong_size_is_an_error_not_a_crash_later():
    job = JobProgress("j", 1)
    with pytest.raises(ValueError, match="rgb8 frame"):
        job.apply(*event("frame", 0, index=0, width=4, height=2), (b"\x00" * 5,))


# Forms and workers ------------------------------------------------------------------------------


def test_the_advanced_form_covers_every_method_setting_with_help():
    specs = {spec.name: spec for spec in field_specs(MethodSettings)}
    assert set(specs) == set(MethodSettings.model_fields)
    assert all(spec.description for spec in specs.values())
    assert specs["pca_components"].optional
    assert specs["mask"].choices == ("dynamic", "static", "none")
    assert (specs["learning_rate"].minimum, specs["learning_rate"].maximum) == (0.0, 10.0)
    assert specs["residual_adain"].title == "Residual AdaIN"
    assert specs["pca_components"].title == "PCA components"
    assert specs["kv_copy"].title == "K/V copy"
    assert specs["inversion_timestep"].title == "Inversion timestep"


def test_latest_wins_renders_the_first_and_the_newest_request_only():
    started = threading.Event()
    release = threading.Event()
    done: list[tuple[int, int]] = []

    def work(value: int) -> int:
        if value == 1:
            started.set()
            release.wait(5)
        return value * 10

    worker = LatestWins(work, lambda gen, result: done.append((gen, result)), lambda gen, error: None)
    worker.submit(1)
    assert started.wait(5)
    for value in (2, 3, 4):
        worker.submit(value)
    release.set()
    deadline = time.monotonic() + 5
    while len(done) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.close()
    assert done == [(1, 10), (4, 40)]
    assert worker.is_latest(4)  # the view stops saying "rendering" at 4
    assert not worker.is_latest(1)


def test_latest_wins_reports_errors_and_keeps_working():
    errors: list[str] = []
    results: list[int] = []
    finished = threading.Event()

    def work(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value

    def on_done(generation: int, result: int) -> None:
        results.append(result)
        finished.set()

    worker = LatestWins(work, on_done, lambda gen, error: errors.append(str(error)))
    worker.submit(-1)
    time.sleep(0.2)
    worker.submit(5)
    assert finished.wait(5)
    worker.close()
    assert errors == ["negative"]
    assert results == [5]


def test_orbit_camera_round_trips_and_orbits_around_the_target():
    camera = Camera(eye=(1.0, 0.5, 2.0), target=(0.2, 0.0, 0.0), fov_deg=45.0)
    orbit = OrbitCamera.from_camera(camera)
    assert orbit.eye == pytest.approx(camera.eye)
    turned = orbit.orbit(90.0, 0.0)
    assert np.linalg.norm(np.subtract(turned.eye, camera.target)) == pytest.approx(orbit.distance)
    assert turned.orbit(0.0, 500.0).elevation_deg == 89.0
    assert orbit.zoom(0.5).distance == pytest.approx(orbit.distance / 2)
    panned = orbit.pan(0.1, 0.0)
    assert np.subtract(panned.eye, panned.target) == pytest.approx(np.subtract(orbit.eye, orbit.target))


def test_orbit_camera_uses_the_renderers_orbit_and_lands_where_a_render_camera_does():
    from anyi2v.render.camera import Camera as RenderCamera
    from anyi2v.render.camera import orbit_angles, orbit_eye

    for azimuth, elevation, distance in [(30.0, 20.0, 2.5), (-170.0, -45.0, 0.3), (400.0, 89.0, 10.0)]:
        orbit = OrbitCamera((0.1, -0.2, 0.3), azimuth, elevation, distance)
        assert orbit.eye == orbit_eye(azimuth, elevation, distance, (0.1, -0.2, 0.3))
        assert orbit.eye == RenderCamera.orbit(azimuth, elevation, distance, target=(0.1, -0.2, 0.3)).eye
    camera = Camera(eye=(1.0, 0.5, 2.0), target=(0.2, 0.0, 0.0), fov_deg=45.0)
    back = OrbitCamera.from_camera(camera)
    assert (back.azimuth_deg, back.elevation_deg, back.distance) == orbit_angles(np.subtract(camera.eye, camera.target))


def _old_config_dir() -> Path:
    """desktop/models/files.py's hand-made path before platformdirs."""
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "anyi2v"


def _old_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "anyi2v" / "studio"


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG variables are Linux's convention")
def test_user_folders_come_from_platformdirs_and_match_the_old_xdg_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from anyi2v.desktop.models.files import config_dir, data_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config_dir() == _old_config_dir() == tmp_path / "config" / "anyi2v"
    assert data_dir() == _old_data_dir() == tmp_path / "data" / "anyi2v" / "studio"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == _old_config_dir() == tmp_path / "home" / ".config" / "anyi2v"
    assert data_dir() == _old_data_dir() == tmp_path / "home" / ".local" / "share" / "anyi2v" / "studio"


def test_shots_for_files(tmp_path: Path):
    from anyi2v.desktop.models.files import shot_for_file

    mesh_shot = shot_for_file(EXAMPLES / "assets" / "torus.obj")
    assert mesh_shot.conditions[0].modality == "depth"
    assert Path(mesh_shot.scene.path).is_absolute()
    with pytest.raises(ValueError, match="not a mesh, point cloud or image"):
        shot_for_file(tmp_path / "notes.txt")


# Condition layers -------------------------------------------------------------------------------


def test_every_modality_has_a_label_and_regions_offer_objects_and_masks(tmp_path):
    from anyi2v.desktop.models.layers import MODALITY_LABELS, choice_index, region_choices
    from anyi2v.shared.shot import MODALITIES

    assert set(MODALITY_LABELS) == set(MODALITIES)
    choices = region_choices(("car",), None)
    assert [c.label for c in choices] == ["everywhere", "object: car", "all but car"]
    assert choice_index(choices, {"kind": "object", "object": "car", "invert": True}) == 2
    # the layer's own region is offered even when its object is not in view, and its mask with its inverse
    gone = region_choices((), {"kind": "object", "object": "wheel", "invert": False})
    assert "object: wheel" in [c.label for c in gone]
    masked = region_choices(("car",), {"kind": "mask", "path": "masks/sky.png", "invert": False})
    assert [c.label for c in masked][-2:] == ["mask: sky.png", "outside mask: sky.png"]
    assert choice_index(masked, {"kind": "mask", "path": "masks/sky.png"}) == len(masked) - 2


def test_image_layers_and_masks_keep_paths_relative_to_the_shot(tmp_path):
    from anyi2v.desktop.models.layers import image_layer, mask_region

    shots, images = tmp_path / "shots", tmp_path / "images"
    assert image_layer(images / "sketch.png", shots) == {
        "source": {"kind": "image", "path": "../images/sketch.png"}, "modality": "other", "region": None
    }  # fmt: skip
    assert mask_region(shots / "masks" / "sky.png", shots, invert=True) == {
        "kind": "mask", "path": "masks/sky.png", "invert": True
    }  # fmt: skip


def test_export_target_follows_the_typed_suffix_or_the_chosen_type(tmp_path):
    from anyi2v.desktop.models.files import EXPORT_FORMATS, default_export_path, export_target

    mp4, webm, gif, png = EXPORT_FORMATS
    assert export_target(tmp_path / "clip.gif", mp4) == (tmp_path / "clip.gif", "gif")  # the typed name wins
    assert export_target(tmp_path / "clip", webm) == (tmp_path / "clip.webm", "webm")
    assert export_target(tmp_path / "take.2", gif) == (tmp_path / "take.2.gif", "gif")
    assert export_target(tmp_path / "frames", png) == (tmp_path / "frames", "png")
    assert default_export_path(tmp_path / "shots" / "demo.json", tmp_path / "shots") == tmp_path / "shots" / "demo.mp4"
    assert default_export_path(None, tmp_path).name == "result.mp4"


def test_the_connection_status_line_says_what_the_user_can_do():
    from anyi2v.desktop.models.connection import ConnectionSettings, ConnectionStatus

    assert "Generate > Connect" in ConnectionStatus("none").line
    busy = ConnectionStatus("connected", "tcp://gpu:5557", "sd15", "cuda", queued=2, running="job-1")
    assert busy.line == "Connected: sd15 on cuda, busy (2 queued)"
    assert ConnectionStatus("connected", "tcp://gpu:5557", "sd15", "cuda").line.endswith("idle")
    assert "retrying" in ConnectionStatus("disconnected", "tcp://gpu:5557", message="no answer; retrying").line
    assert "tcp://HOST:PORT" in ConnectionSettings("remote", "gpu-box:5557").problem()
    assert "both" in ConnectionSettings("remote", "tcp://gpu:5557", server_key="server.key").problem()
    assert ConnectionSettings("remote", "tcp://127.0.0.1:5557").problem() is None


def test_the_first_save_adopts_the_results_made_while_untitled(studio_home, tmp_path):
    from anyi2v.desktop.models.files import ResultHistory

    untitled, other = ResultHistory(None, "abc123"), ResultHistory(None, "def456")
    assert untitled.root != other.root  # each untitled shot has results of its own
    folder = untitled.new_folder("studio-0123456789")
    (folder / "frames").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"job_id": "studio-0123456789", "n_frames": 4}')
    saved = ResultHistory(tmp_path / "shots" / "walk.json")
    moved = saved.adopt(untitled)
    assert moved == [saved.root / folder.name]
    assert [entry.job_id for entry in saved.entries()] == ["studio-0123456789"]
    assert not untitled.root.exists()
    assert saved.adopt(untitled) == []  # nothing left: harmless


def test_query_points_stay_on_the_object_when_the_first_key_changes(shot):
    x0, y0, x1, y1 = shot.tracks[0].first_box
    middle = ((x0 + x1) / 2, (y0 + y1) / 2)
    pointed = edits.add_query_point(shot, "torus", middle)
    moved = edits.set_key(pointed, "torus", 0, (x0 + 0.1, y0, x1 + 0.1, y1))  # the first key moves right
    assert moved.tracks[0].query_points[0] == pytest.approx((middle[0] + 0.1, middle[1]))
    ahead = edits.set_key(pointed, "torus", 0, (0.0, 0.0, 0.2, 0.2))
    assert ahead.tracks[0].query_points[0] == pytest.approx((0.1, 0.1))  # the middle of the new box
    without_first = edits.delete_keys(pointed, {("torus", 0)})  # the key at 15 becomes the first
    fx0, fy0, fx1, fy1 = without_first.tracks[0].first_box
    assert without_first.tracks[0].query_points[0] == pytest.approx(((fx0 + fx1) / 2, (fy0 + fy1) / 2))


def test_a_query_point_clicked_at_another_frame_lands_on_the_object_in_frame_0(shot):
    at_8 = boxes_at(shot, 8)["torus"]
    quarter = (at_8[0] + 0.25 * (at_8[2] - at_8[0]), at_8[1] + 0.75 * (at_8[3] - at_8[1]))
    pointed = edits.add_query_point(shot, "torus", quarter, frame=8)
    x0, y0, x1, y1 = shot.tracks[0].first_box
    assert pointed.tracks[0].query_points[0] == pytest.approx((x0 + 0.25 * (x1 - x0), y0 + 0.75 * (y1 - y0)))
    with pytest.raises(EditError, match="inside 'torus''s box"):
        edits.add_query_point(shot, "torus", (at_8[2] + 0.05, at_8[3] + 0.05), frame=8)


def test_a_key_drag_stops_at_the_ends_of_the_clip():
    from anyi2v.desktop.models.timeline import clamp_shift

    assert clamp_shift([4, 15], 2, 16) == 0  # the last key is at the end already
    assert clamp_shift([4, 10], 9, 16) == 5
    assert clamp_shift([4, 10], -9, 16) == -4
    assert clamp_shift([], 3, 16) == 0


def test_a_hand_edited_config_of_the_wrong_shape_gives_defaults_and_says_so(tmp_path):
    from anyi2v.desktop.models.files import StudioConfig

    path = tmp_path / "studio.json"
    path.write_text('{"connection": {"mode": "remote", "address": 5555}, "recent": ["a.json", 3]}')
    config = StudioConfig.load(path)
    assert config.connection.mode == "local"
    assert "connection.address must be text" in config.problem
    assert (tmp_path / "studio.bad").is_file()
    assert not path.exists()


def test_the_low_memory_choice_is_saved_and_a_hand_edited_one_of_the_wrong_type_is_refused(tmp_path):
    from anyi2v.desktop.models.connection import ConnectionSettings
    from anyi2v.desktop.models.files import StudioConfig

    path = tmp_path / "studio.json"
    StudioConfig([], ConnectionSettings("local", device="cuda:1", low_memory=True)).save(path)
    assert StudioConfig.load(path).connection == ConnectionSettings("local", device="cuda:1", low_memory=True)
    path.write_text('{"connection": {"mode": "local", "low_memory": "yes"}}')
    config = StudioConfig.load(path)
    assert config.connection.low_memory is False
    assert "connection.low_memory must be true or false" in config.problem


def test_key_paths_may_start_with_a_tilde(tmp_path, monkeypatch):
    from anyi2v.desktop.models.connection import ConnectionSettings

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a.key").write_text("x")
    (tmp_path / "a.key_secret").write_text("x")
    assert ConnectionSettings("remote", "tcp://gpu:5557", "~/a.key", "~/a.key_secret").problem() is None


def test_saving_a_new_shot_beside_its_mesh_keeps_the_path_relative(tmp_path):
    import shutil

    from anyi2v.desktop.models.files import shot_for_file

    folder = tmp_path / "ünï"
    folder.mkdir()
    mesh = folder / "tör us.obj"
    shutil.copy(EXAMPLES / "assets" / "torus.obj", mesh)
    document = ShotDocument(shot_for_file(mesh), None, folder)
    assert Path(document.shot.scene.path).is_absolute()  # until it is saved somewhere
    document.save(folder / "shot.json")
    assert load_shot(folder / "shot.json").scene.path == "tör us.obj"


def test_a_new_shot_around_an_image_keeps_its_aspect_ratio(tmp_path):
    from PIL import Image

    from anyi2v.desktop.models.files import output_size_for, shot_for_file

    assert output_size_for(333, 251) == (128, 96)
    assert output_size_for(100, 1000) == (64, 128)  # never below what a shot accepts
    Image.new("RGB", (333, 251)).save(tmp_path / "odd.png")
    shot = shot_for_file(tmp_path / "odd.png")
    assert (shot.output.width, shot.output.height) == (128, 96)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png is not a readable image"):
        shot_for_file(tmp_path / "broken.png")


@pytest.mark.parametrize("side", [9_000, 30_000])  # over our cap; over Pillow's own hard limit too
def test_a_new_shot_around_a_decompression_bomb_is_refused_naming_it(tmp_path, side):
    from anyi2v.desktop.models.files import shot_for_file
    from tests.render.test_hostile_inputs import _png_bomb

    _png_bomb(tmp_path / "huge.png", side, side)
    with pytest.raises(ValueError, match=rf"huge\.png is {side}x{side} pixels, over the limit .*decompression bomb"):
        shot_for_file(tmp_path / "huge.png")
