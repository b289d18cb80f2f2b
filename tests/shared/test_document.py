"""The Shot document: loading, every rejection rule with its path, versions, schema and saving."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from anyi2v.shared.document import (
    MAX_DOCUMENT_BYTES,
    dump_shot,
    load_shot,
    missing_files,
    parse_shot,
    referenced_files,
    referenced_objects,
    save_shot,
)
from anyi2v.shared.errors import ShotError
from anyi2v.shared.schema import shot_json_schema
from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.shot import SCHEMA_VERSION
from tests.conftest import EXAMPLES

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_SHOTS = sorted(EXAMPLES.glob("*.json"))


def minimal() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "prompt": "a red ball",
        "conditions": [{"source": {"kind": "image", "path": "ball.png"}, "modality": "depth"}],
        "tracks": [
            {
                "id": "ball",
                "keyframes": [
                    {"frame": 0, "box": [0.1, 0.4, 0.3, 0.6]},
                    {"frame": 15, "box": [0.7, 0.4, 0.9, 0.6]},
                ],
            }
        ],
    }


def problems_of(document: dict[str, Any] | str | bytes, **options: Any) -> list[str]:
    with pytest.raises(ShotError) as caught:
        parse_shot(document, **options)
    return [str(problem) for problem in caught.value.problems]


def test_there_are_at_least_three_examples() -> None:
    assert len(EXAMPLE_SHOTS) >= 3


@pytest.mark.parametrize("path", EXAMPLE_SHOTS, ids=lambda path: path.stem)
def test_examples_load_and_their_files_exist(path: Path) -> None:
    shot = load_shot(path)
    assert shot.tracks or (shot.scene is not None and shot.scene.derived_track_ids)  # every example moves
    assert missing_files(shot, path.parent) == []


def test_the_examples_cover_moving_crossing_and_camera_pan() -> None:
    shots = [load_shot(path) for path in EXAMPLE_SHOTS]
    assert any(len(shot.tracks) >= 2 and all(t.role == "object" for t in shot.tracks) for shot in shots)
    assert any(shot.tracks and all(t.role == "anchor" for t in shot.tracks) for shot in shots)


def test_defaults_are_the_papers() -> None:
    shot = parse_shot(minimal())
    assert (shot.output.width, shot.output.height, shot.output.n_frames) == (512, 512, 16)
    assert shot.sampling.steps == 25
    method = shot.method
    assert method.inversion_timestep == 201
    assert method.adain_patch_size == 4
    assert method.pca_components == 64
    assert method.learning_rate == 0.01
    assert method.optimization_iterations == 5
    assert method.mask == "dynamic"
    assert method.optimize_features == "query"
    assert method.kv_copy
    assert method.filter_cutoff == 0.5


def test_round_trip_through_text_is_lossless(tmp_path: Path) -> None:
    for path in EXAMPLE_SHOTS:
        shot = load_shot(path)
        assert parse_shot(dump_shot(shot)) == shot
        save_shot(shot, tmp_path / path.name)
        assert load_shot(tmp_path / path.name) == shot


def test_keyframes_are_sorted_by_frame() -> None:
    document = minimal()
    document["tracks"][0]["keyframes"].reverse()
    shot = parse_shot(document)
    assert [key.frame for key in shot.tracks[0].keyframes] == [0, 15]


def test_every_ablation_is_expressible() -> None:
    document = minimal()
    document["method"] = {
        "kv_copy": False,
        "pca_components": None,
        "mask": "none",
        "optimize_features": "residual",
        "optimized_layers": ["up_blocks.1.attentions.1.transformer_blocks.0.attn1"],
        "residual_adain": False,
        "trajectory_control": False,
        "structure_injection": False,
        "gaussian_weighting": True,
        "high_frequency_filter": True,
    }
    method = parse_shot(document).method
    assert method != MethodSettings()
    assert method.pca_components is None
    assert method.mask == "none"
    assert not method.kv_copy
    document["method"] = {"mask": "static"}
    assert parse_shot(document).method.mask == "static"


# One case per rejection rule of the issue: (edit to a valid document, expected path, words of the reason).
def _set(path: list[str | int], value: Any) -> Any:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
        target[path[-1]] = value

    return edit


REJECTIONS = [
    ("nan", _set(["sampling", "guidance_scale"], float("nan")), "sampling.guidance_scale", "finite"),
    ("infinity", _set(["output", "fps"], float("inf")), "output.fps", "finite"),
    (
        "nan in a box",
        _set(["tracks", 0, "keyframes", 1, "box", 2], float("nan")),
        "tracks[0].keyframes[1].box[2]",
        "finite",
    ),
    ("duplicate frames", _set(["tracks", 0, "keyframes", 1, "frame"], 0), "tracks[0]", "both at frame 0"),
    (
        "key past the clip",
        _set(["tracks", 0, "keyframes", 1, "frame"], 16),
        "tracks[0].keyframes[1].frame",
        "outside the clip",
    ),
    (
        "negative key",
        _set(["tracks", 0, "keyframes", 1, "frame"], -1),
        "tracks[0].keyframes[1].frame",
        "greater than or equal to 0",
    ),
    (
        "zero-area box",
        _set(["tracks", 0, "keyframes", 1, "box"], [0.5, 0.5, 0.5, 0.7]),
        "tracks[0].keyframes[1].box",
        "x0 must be < x1",
    ),
    (
        "flat box",
        _set(["tracks", 0, "keyframes", 1, "box"], [0.1, 0.7, 0.5, 0.7]),
        "tracks[0].keyframes[1].box",
        "y0 must be < y1",
    ),
    (
        "first box off frame",
        _set(["tracks", 0, "keyframes", 0, "box"], [1.1, 0.4, 1.3, 0.6]),
        "tracks[0]",
        "does not overlap the frame",
    ),
    (
        "huge coordinate",
        _set(["tracks", 0, "keyframes", 1, "box", 3], 1e9),
        "tracks[0].keyframes[1].box",
        "outside [-1.0, 2.0]",
    ),
    ("width not a multiple of 8", _set(["output", "width"], 500), "output.width", "multiple of 8"),
    ("height not a multiple of 8", _set(["output", "height"], 260), "output.height", "multiple of 8"),
    ("too many frames", _set(["output", "n_frames"], 33), "output.n_frames", "more than the motion module allows (32)"),
    ("unknown field", _set(["promt"], "typo"), "promt", "unknown field (did you mean 'prompt'?)"),
    (
        "unknown nested field",
        _set(["tracks", 0, "keyframes", 0, "interp"], "linear"),
        "tracks[0].keyframes[0].interp",
        "unknown field",
    ),
    ("string for a number", _set(["sampling", "seed"], "7"), "sampling.seed", "valid integer"),
    ("float frame", _set(["tracks", 0, "keyframes", 0, "frame"], 1.5), "tracks[0].keyframes[0].frame", "valid integer"),
    (
        "bad interpolation",
        _set(["tracks", 0, "keyframes", 0, "interpolation"], "cubic"),
        "tracks[0].keyframes[0].interpolation",
        "'smooth'",
    ),
    ("bad modality", _set(["conditions", 0, "modality"], "depht"), "conditions[0].modality", "'depth'"),
    ("bad source kind", _set(["conditions", 0, "source", "kind"], "video"), "conditions[0].source", "kind"),
    (
        "empty image path",
        _set(["conditions", 0, "source", "path"], ""),
        "conditions[0].source.path",
        "at least 1 character",
    ),
    ("no conditions", _set(["conditions"], []), "conditions", "at least 1 item"),
    ("no keyframes", _set(["tracks", 0, "keyframes"], []), "tracks[0].keyframes", "at least 1 item"),
    ("duplicate track ids", lambda d: d["tracks"].append(copy.deepcopy(d["tracks"][0])), "tracks", "same id 'ball'"),
    ("query point outside", _set(["tracks", 0, "query_points"], [[0.9, 0.9]]), "tracks[0]", "query_points[0]"),
    ("scene layer without scene", _set(["conditions", 0, "source"], {"kind": "scene"}), "conditions", "no scene"),
    (
        "layer listed twice",
        _set(["method", "optimized_layers"], ["up_blocks.1.a", "up_blocks.1.a"]),
        "method.optimized_layers",
        "listed twice",
    ),
    ("bad layer path", _set(["method", "query_layers"], ["up blocks"]), "method.query_layers[0]", "pattern"),
    ("huge seed", _set(["sampling", "seed"], 10**30), "sampling.seed", "less than or equal to"),
    (
        "eye equals target",
        _set(["scene"], {"path": "a.glb", "camera": {"eye": [0, 0, 0]}}),
        "scene.camera.target",
        "no viewing direction",
    ),
]


@pytest.mark.parametrize(("edit", "where", "why"), [case[1:] for case in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_each_rule_rejects_with_path_and_reason(edit: Any, where: str, why: str) -> None:
    document = minimal()
    edit(document)
    problems = problems_of(document)
    assert any(p.startswith(f"{where}: ") and why in p for p in problems), problems


def test_the_frame_limit_follows_the_loaded_motion_module() -> None:
    document = minimal()
    document["output"] = {"n_frames": 24}
    parse_shot(document)
    assert "output.n_frames: 24 frames is more than the motion module allows (16)" in problems_of(
        document, max_frames=16
    )


def test_all_problems_are_listed_at_once() -> None:
    problems = problems_of((FIXTURES / "five_mistakes.json").read_bytes())
    wheres = {problem.split(": ")[0] for problem in problems}
    assert wheres == {
        "output.width",
        "promt",
        "sampling.guidance_scale",
        "tracks[0].keyframes[0].box",
        "tracks[0].keyframes[1].frame",
    }, problems


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not a text file"),
        (b"[1, 2]", "a shot is a JSON object, not list"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"prompt": "x"}', "schema_version: required field is missing"),
        (b'{"schema_version": "2"}', "schema_version: must be an integer"),
        (b'{"schema_version": 99}', "newer than this anyi2v understands"),
        (b'{"schema_version": 0}', "not a known version"),
    ],
)
def test_files_that_are_not_shots_get_one_clear_line(data: bytes, why: str) -> None:
    problems = problems_of(data)
    assert len(problems) == 1
    assert why in problems[0]


def test_a_100_mb_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(100 * 2**20)  # sparse: costs no disk
    with pytest.raises(ShotError) as caught:
        load_shot(path)
    assert len(caught.value.problems) == 1
    assert "too large" in str(caught.value)
    assert caught.value.source == str(path)
    assert MAX_DOCUMENT_BYTES < 100 * 2**20


def test_random_bytes_give_one_line(tmp_path: Path) -> None:
    path = tmp_path / "noise.json"
    path.write_bytes(os.urandom(2**20))
    with pytest.raises(ShotError) as caught:
        load_shot(path)
    assert len(caught.value.problems) == 1


def test_unreadable_paths_name_the_file(tmp_path: Path) -> None:
    for path, why in [(tmp_path / "absent.json", "no such file"), (tmp_path, "is a folder")]:
        with pytest.raises(ShotError, match=why) as caught:
            load_shot(path)
        assert str(path) in str(caught.value)


def test_an_old_version_is_upgraded() -> None:
    shot = load_shot(FIXTURES / "shot_v1.json")
    assert shot.schema_version == SCHEMA_VERSION
    ball = shot.tracks[0]
    assert ball.keyframes[0].box == pytest.approx((0.1, 0.4, 0.3, 0.6))
    assert ball.keyframes[1].box == pytest.approx((0.7, 0.4, 0.9, 0.6))
    assert ball.keyframes[1].interpolation == "linear"
    assert ball.query_points[0] == pytest.approx((0.2, 0.5))


def test_upgrading_does_not_change_the_callers_data() -> None:
    document = json.loads((FIXTURES / "shot_v1.json").read_text())
    before = copy.deepcopy(document)
    parse_shot(document)
    assert document == before


def test_referenced_files_and_missing_ones(tmp_path: Path) -> None:
    document = minimal()
    document["scene"] = {"path": "scene.glb", "camera": {"eye": [0, 0, 3]}}
    document["conditions"].append(
        {
            "source": {"kind": "scene"},
            "modality": "depth",
            "region": {"kind": "mask", "path": "mask.png", "invert": True},
        }
    )
    shot = parse_shot(document)
    assert [where for where, _ in referenced_files(shot)] == [
        "scene.path",
        "conditions[0].source.path",
        "conditions[1].region.path",
    ]
    (tmp_path / "ball.png").write_bytes(b"png")
    missing = [str(problem) for problem in missing_files(shot, tmp_path)]
    assert len(missing) == 2
    assert missing[0].startswith("scene.path: file not found")


def test_referenced_objects_are_those_of_motions_anchors_and_regions() -> None:
    shot = load_shot(EXAMPLES / "car_orbit_drive.json")
    assert referenced_objects(shot) == [
        *((f"scene.motions[0].objects[{i}]", name) for i, name in enumerate(shot.scene.motions[0].objects)),
        ("conditions[1].region.object", "body"),
    ]
    assert referenced_objects(parse_shot(minimal())) == []


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shot.json"
    first = parse_shot(minimal())
    save_shot(first, path)
    changed = first.model_copy(update={"prompt": "a blue ball"})

    def fail(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        save_shot(changed, path)
    monkeypatch.undo()
    assert load_shot(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["shot.json"]  # no temporary left behind


def test_the_schema_accepts_the_examples_and_rejects_unknown_fields() -> None:
    schema = shot_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in EXAMPLE_SHOTS:
        assert list(validator.iter_errors(json.loads(path.read_text()))) == []
    document = minimal()
    document["promt"] = "typo"
    assert list(validator.iter_errors(document))
    document = minimal()
    document["output"] = {"width": 500}
    assert list(validator.iter_errors(document))
