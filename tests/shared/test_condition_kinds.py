"""One vocabulary of condition kinds (a layer's ``modality``): the render passes' names, in shot files,
the schema and errors; the method's older names are read as the current ones and saved as them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anyi2v.shared.document import dump_shot, load_shot, parse_shot, save_shot
from anyi2v.shared.errors import ShotError
from anyi2v.shared.modalities import MODALITIES, MODALITY_ALIASES, SCENE_MODALITIES, current_modality
from anyi2v.shared.schema import shot_json_schema
from anyi2v.shared.shot import SCHEMA_VERSION
from tests.conftest import EXAMPLES

FIXTURES = Path(__file__).parent / "fixtures"
OLD_NAMES = {"canny": "edges", "hed": "soft_edges", "mesh_render": "shaded", "point_cloud_render": "splat"}


def shot_with(modality: Any) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "prompt": "a red ball",
        "conditions": [
            {"source": {"kind": "image", "path": "ball.png"}, "modality": "depth"},
            {"source": {"kind": "image", "path": "lines.png"}, "modality": modality},
        ],
        "tracks": [{"id": "ball", "keyframes": [{"frame": 0, "box": [0.1, 0.4, 0.3, 0.6]}]}],
    }


def test_the_kinds_are_the_render_passes_names_and_the_image_only_ones() -> None:
    assert SCENE_MODALITIES == (
        "depth",
        "normal",
        "silhouette",
        "segmentation",
        "edges",
        "soft_edges",
        "shaded",
        "splat",
    )
    assert set(MODALITIES) == {*SCENE_MODALITIES, "skeleton", "sketch", "rgb", "other"}
    assert MODALITY_ALIASES == OLD_NAMES
    assert not set(MODALITY_ALIASES) & set(MODALITIES)  # an alias never shadows a current name


@pytest.mark.parametrize("name", SCENE_MODALITIES)
def test_each_render_pass_name_is_a_condition_kind(name: str) -> None:
    assert parse_shot(shot_with(name)).conditions[1].modality == name


@pytest.mark.parametrize(("old", "new"), sorted(OLD_NAMES.items()))
def test_an_old_name_loads_as_the_new_one_and_saves_as_it(tmp_path: Path, old: str, new: str) -> None:
    path = tmp_path / "shot.json"
    path.write_text(json.dumps(shot_with(old)), encoding="utf-8")
    shot = load_shot(path)
    assert shot.conditions[1].modality == new
    save_shot(shot, path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["conditions"][1]["modality"] == new
    assert old not in path.read_text(encoding="utf-8")
    assert load_shot(path) == shot


def test_the_fixture_with_every_old_name_loads_with_the_new_names() -> None:
    shot = load_shot(FIXTURES / "old_condition_kinds.json")
    assert [layer.modality for layer in shot.conditions] == ["shaded", "splat", "edges", "soft_edges"]
    saved = dump_shot(shot)
    for old in OLD_NAMES:
        assert f'"{old}"' not in saved


def test_an_unknown_kind_names_where_it_is_and_every_allowed_kind() -> None:
    with pytest.raises(ShotError) as caught:
        parse_shot(shot_with("edgez"), source="shot.json")
    problems = [str(problem) for problem in caught.value.problems]
    assert len(problems) == 1, problems
    assert problems[0].startswith("conditions[1].modality: ")
    assert "'edgez'" in problems[0]
    assert "did you mean 'edges'?" in problems[0]
    for name in MODALITIES:
        assert f"'{name}'" in problems[0]
    assert "shot.json" in str(caught.value)


def test_a_misspelt_old_name_suggests_the_current_name() -> None:
    with pytest.raises(ShotError) as caught:
        parse_shot(shot_with("cany"))
    assert "did you mean 'edges'?" in str(caught.value)


def test_a_kind_that_is_not_a_string_is_refused_where_it_is() -> None:
    with pytest.raises(ShotError) as caught:
        parse_shot(shot_with(5))
    assert str(caught.value.problems[0]).startswith("conditions[1].modality: ")


def test_a_huge_unknown_kind_is_cut_in_the_message() -> None:
    with pytest.raises(ShotError) as caught:
        parse_shot(shot_with("x" * 100_000))
    assert len(str(caught.value)) < 2_000


def test_current_modality_maps_old_names_and_keeps_current_ones() -> None:
    for name in MODALITIES:
        assert current_modality(name) == name
    for old, new in OLD_NAMES.items():
        assert current_modality(old) == new
    with pytest.raises(ValueError, match="unknown condition kind"):
        current_modality("mesh")


def test_the_schema_lists_the_current_names_and_describes_the_old_ones() -> None:
    layer = shot_json_schema()["$defs"]["ConditionLayer"]["properties"]["modality"]
    assert layer["enum"] == list(MODALITIES)
    for old, new in OLD_NAMES.items():
        assert f"{old} as {new}" in layer["description"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_use_the_current_names(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    written = [layer["modality"] for layer in document["conditions"]]
    assert all(name in MODALITIES for name in written), written
