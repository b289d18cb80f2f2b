"""The shot's `model` section: models chosen by their library name, never by a path; schema version 4."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from anyi2v.shared.document import dump_shot, load_shot, parse_shot, save_shot
from anyi2v.shared.errors import ShotError
from anyi2v.shared.model_names import (
    LIBRARY_NAME_PATTERN,
    MAX_WEIGHT,
    MIN_WEIGHT,
    SCHEDULERS,
    library_name_problem,
    parse_weighted_name,
)
from anyi2v.shared.schema import shot_json_schema
from anyi2v.shared.shot import SCHEMA_VERSION
from anyi2v.shared.summary import describe_shot
from anyi2v.shared.versions import CURRENT_VERSION, UPGRADES
from tests.conftest import EXAMPLES

GOOD_NAMES = [
    "checkpoints/realisticVision_v51",
    "realisticVision_v51",
    "loras/detail tweaker.safetensors",
    "animatediff_models/v3_sd15_mm",
    "a.b-c_d",
    "checkpoints/sub/folder/model",
    "...dots_are_fine_inside",
]
BAD_NAMES = {
    "/home/artist/models/x.safetensors": "absolute path",
    "~/models/x.safetensors": "home folder",
    "C:/models/x.safetensors": "drive letter",
    "c:x": "drive letter",
    "models\\x.safetensors": "backslash",
    "..": "'..'",
    "../outside": "'..'",
    "checkpoints/../../etc/passwd": "'..'",
    "checkpoints/..": "'..'",
    "./checkpoints/x": "'.'",
    "checkpoints//x": "empty part",
    "checkpoints/": "empty part",
    "http://example.com/x.safetensors": "':'",
    "bad\x00name": "control character",
    "tab\tname": "control character",
    " padded": "space",
    "padded ": "space",
    "": "empty",
}


def shot_document(model: Any = None, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": version,
        "prompt": "a red ball",
        "conditions": [{"source": {"kind": "image", "path": "ball.png"}, "modality": "depth"}],
    }
    if model is not None:
        document["model"] = model
    return document


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ShotError) as caught:
        parse_shot(document)
    return [str(problem) for problem in caught.value.problems]


# --- version 4 ------------------------------------------------------------------------------------------


def test_the_current_version_is_4_with_an_upgrade_from_3() -> None:
    assert SCHEMA_VERSION == CURRENT_VERSION == 4
    assert UPGRADES[3]({"schema_version": 3, "prompt": "x"}) == {"schema_version": 4, "prompt": "x"}


def test_a_version_3_file_loads_and_is_saved_as_4(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(shot_document(version=3)))
    shot = load_shot(path)
    assert shot.schema_version == 4
    assert shot.model is None  # absent: the daemon's default
    save_shot(shot, tmp_path / "new.json")
    assert json.loads((tmp_path / "new.json").read_text())["schema_version"] == 4


def test_a_version_3_file_cannot_have_a_model_section_silently_dropped() -> None:
    # The upgrade adds nothing and drops nothing: a model section in a version-3 file is still read.
    shot = parse_shot(shot_document({"checkpoint": "dreamshaper_8"}, version=3))
    assert shot.model is not None
    assert shot.model.checkpoint == "dreamshaper_8"


def test_the_model_section_round_trips() -> None:
    model = {
        "checkpoint": "checkpoints/realisticVision_v51",
        "motion_module": "v3_sd15_mm",
        "loras": [{"name": "loras/detail_tweaker", "weight": 0.8}, {"name": "add_more_details"}],
        "motion_loras": [{"name": "v2_lora_ZoomIn", "weight": -0.5}],
        "vae": "vae/vae-ft-mse-840000-ema-pruned",
        "scheduler": "dpmpp_2m_karras",
    }
    shot = parse_shot(shot_document(model))
    assert shot.model is not None
    assert shot.model.checkpoint == "checkpoints/realisticVision_v51"
    assert [(lora.name, lora.weight) for lora in shot.model.loras or ()] == [
        ("loras/detail_tweaker", 0.8),
        ("add_more_details", 1.0),
    ]
    assert shot.model.motion_loras is not None
    assert shot.model.motion_loras[0].weight == -0.5
    assert parse_shot(dump_shot(shot)) == shot
    empty = parse_shot(shot_document({})).model
    assert empty is not None
    assert (empty.checkpoint, empty.loras, empty.scheduler) == (None, None, None)  # every part: the default


def test_the_examples_are_at_the_current_version() -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION, path.name


# --- names, never paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_library_names_are_accepted(name: str) -> None:
    assert library_name_problem(name) is None
    assert parse_shot(shot_document({"checkpoint": name})).model is not None
    assert re.fullmatch(LIBRARY_NAME_PATTERN, name) is not None  # the published schema agrees


@pytest.mark.parametrize(("name", "why"), BAD_NAMES.items())
def test_paths_are_refused_at_their_field(name: str, why: str) -> None:
    problem = library_name_problem(name)
    assert problem is not None
    assert why in problem
    for field, model in (
        ("model.checkpoint", {"checkpoint": name}),
        ("model.motion_module", {"motion_module": name}),
        ("model.vae", {"vae": name}),
        ("model.loras[1].name", {"loras": [{"name": "ok"}, {"name": name}]}),
        ("model.motion_loras[0].name", {"motion_loras": [{"name": name, "weight": 1.0}]}),
    ):
        problems = problems_of(shot_document(model))
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"{field}: "), problems
        if name:
            assert why in problems[0]
    if name:  # (the schema's minLength refuses the empty name)
        assert re.fullmatch(LIBRARY_NAME_PATTERN, name) is None


def test_a_path_problem_says_what_to_write_instead() -> None:
    (problem,) = problems_of(shot_document({"checkpoint": "/home/artist/realisticVision.safetensors"}))
    assert "'/home/artist/realisticVision.safetensors'" in problem
    assert "library name" in problem
    assert "anyi2v models" in problem


@pytest.mark.parametrize(
    ("weight", "why"),
    [(4.5, "less than or equal to 4"), (-4.01, "greater than or equal to -4"), ("1", "valid number"), (True, "number")],
)
def test_weights_are_numbers_within_the_range(weight: Any, why: str) -> None:
    (problem,) = problems_of(shot_document({"loras": [{"name": "x", "weight": weight}]}))
    assert problem.startswith("model.loras[0].weight: ")
    assert why in problem


def test_weights_are_finite() -> None:
    text = json.dumps(shot_document({"motion_loras": [{"name": "x", "weight": 1.0}]})).replace("1.0", "NaN")
    with pytest.raises(ShotError) as caught:
        parse_shot(text)
    assert [problem.where for problem in caught.value.problems] == ["model.motion_loras[0].weight"]


def test_whole_number_weights_and_the_edges_are_accepted() -> None:
    loras = [{"name": "a", "weight": 1}, {"name": "b", "weight": MAX_WEIGHT}, {"name": "c", "weight": MIN_WEIGHT}]
    model = {"loras": loras}
    chosen = parse_shot(shot_document(model)).model
    assert chosen is not None
    assert [lora.weight for lora in chosen.loras or ()] == [1.0, 4.0, -4.0]


def test_a_lora_given_twice_is_refused() -> None:
    (problem,) = problems_of(shot_document({"loras": [{"name": "a"}, {"name": "b"}, {"name": "a", "weight": 0.5}]}))
    assert problem.startswith("model.loras: ")
    assert "loras[2]" in problem
    assert "loras[0]" in problem


def test_the_scheduler_is_one_of_the_list() -> None:
    assert SCHEDULERS == ("ddim", "euler", "dpmpp_2m_karras", "lcm")
    for name in SCHEDULERS:
        assert parse_shot(shot_document({"scheduler": name})).model.scheduler == name  # type: ignore[union-attr]
    (problem,) = problems_of(shot_document({"scheduler": "dpm++"}))
    assert problem.startswith("model.scheduler: ")
    assert "'ddim'" in problem
    assert "'lcm'" in problem


def test_unknown_fields_in_the_section_are_refused_with_a_guess() -> None:
    (problem,) = problems_of(shot_document({"checkpiont": "x"}))
    assert problem == "model.checkpiont: unknown field (did you mean 'checkpoint'?)"


# --- the JSON schema and the summary -------------------------------------------------------------------------


def test_the_published_schema_has_the_section() -> None:
    schema = shot_json_schema()
    assert schema["$id"].endswith(":4")
    validator = jsonschema.Draft202012Validator(schema)
    good = shot_document({"checkpoint": "checkpoints/x", "loras": [{"name": "y", "weight": -4}], "scheduler": "lcm"})
    assert list(validator.iter_errors(good)) == []
    for bad in (
        {"checkpoint": "/abs/x.safetensors"},
        {"vae": "..\\vae"},
        {"loras": [{"name": "y", "weight": 4.5}]},
        {"scheduler": "dpm++"},
        {"motion_module": "x", "extra": 1},
    ):
        assert list(validator.iter_errors(shot_document(bad))), bad
    text = json.dumps(schema)
    assert "-4" in text
    assert "library" in text


def test_the_summary_names_the_chosen_models() -> None:
    plain = describe_shot(parse_shot(shot_document()))
    assert not [line for line in plain.splitlines() if line.strip().startswith("model:")]
    model = {"checkpoint": "dreamshaper_8", "motion_module": "v3_sd15_mm", "loras": [{"name": "detail", "weight": 0.8}],
             "motion_loras": [{"name": "v2_lora_ZoomIn"}], "vae": "vae-ft-mse", "scheduler": "euler"}  # fmt: skip
    text = describe_shot(parse_shot(shot_document(model)))
    line = next(line for line in text.splitlines() if line.strip().startswith("model:"))
    for words in ("dreamshaper_8", "v3_sd15_mm", "detail (0.8)", "v2_lora_ZoomIn (1)", "vae-ft-mse", "euler"):
        assert words in line, line
    empty = describe_shot(parse_shot(shot_document({"loras": []})))
    assert "no LoRAs" in empty
    assert "the daemon's default" in empty


# --- the command line's NAME[:WEIGHT] ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detail_tweaker", ("detail_tweaker", 1.0)),
        ("detail_tweaker:0.8", ("detail_tweaker", 0.8)),
        ("loras/detail:-1.5", ("loras/detail", -1.5)),
        ("detail:4", ("detail", 4.0)),
        ("/home/me/lora.safetensors:0.5", ("/home/me/lora.safetensors", 0.5)),
        ("C:\\loras\\x.safetensors", ("C:\\loras\\x.safetensors", 1.0)),
        ("C:\\loras\\x.safetensors:0.25", ("C:\\loras\\x.safetensors", 0.25)),
    ],
)
def test_name_and_weight_parse(text: str, expected: tuple[str, float]) -> None:
    assert parse_weighted_name(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("detail:strong", "'strong' is not a weight"),
        ("detail:nan", "finite"),
        ("detail:inf", "finite"),
        ("detail:5", "from -4 to 4"),
        ("detail:-4.5", "from -4 to 4"),
        (":0.8", "no name"),
        ("", "no name"),
    ],
)
def test_bad_weights_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_weighted_name(text)
