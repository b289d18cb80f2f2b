"""The `anyi2v` command: exit codes, messages, the schema, and a --help that imports nothing heavy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anyi2v.cli import main
from tests.conftest import EXAMPLES, REPO

FIVE_MISTAKES = REPO / "tests" / "shared" / "fixtures" / "five_mistakes.json"
HEAVY = ("torch", "diffusers", "transformers", "open3d", "trimesh", "PySide6", "zmq", "pydantic", "numpy", "scipy")


def test_validate_accepts_every_example(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted(str(path) for path in EXAMPLES.glob("*.json"))
    assert main(["validate", *examples]) == 0
    out = capsys.readouterr().out
    assert out.count(": valid") == len(examples)


def test_validate_lists_all_five_mistakes_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FIVE_MISTAKES)]) == 2
    err = capsys.readouterr().err
    assert "5 problems" in err
    for where in (
        "output.width",
        "promt",
        "sampling.guidance_scale",
        "tracks[0].keyframes[0].box",
        "tracks[0].keyframes[1].frame",
    ):
        assert f"  {where}: " in err
    assert "Traceback" not in err


def test_validate_reports_missing_files_unless_told_not_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shot = tmp_path / "shot.json"
    shot.write_text((EXAMPLES / "camera_pan.json").read_text())
    assert main(["validate", str(shot)]) == 2
    assert "conditions[0].source.path: file not found" in capsys.readouterr().err
    assert main(["validate", "--no-files", str(shot)]) == 0


def test_validate_goes_on_after_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\x01not json")
    good = EXAMPLES / "object_moves_across.json"
    assert main(["validate", str(garbage), str(good)]) == 2
    captured = capsys.readouterr()
    assert f"{good}: valid" in captured.out
    assert f"{garbage}: 1 problem" in captured.err


def test_summary_says_what_the_shot_makes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--summary", str(EXAMPLES / "two_objects_cross.json")]) == 0
    out = capsys.readouterr().out
    assert "768x512, 16 frames at 8 fps" in out
    assert "taxi (yellow taxi): object, 3 keys" in out
    assert "area x" in out  # the taxi grows
    assert "AnyI2V paper defaults" in out


def test_max_frames_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--max-frames", "8", str(EXAMPLES / "camera_pan.json")]) == 2
    assert "more than the motion module allows (8)" in capsys.readouterr().err


def test_schema_prints_json_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"].endswith("2020-12/schema")
    assert printed["additionalProperties"] is False
    out = tmp_path / "shot.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == printed


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--max-frames", "zero", "x.json"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["animate"])  # not registered until it works
    assert caught.value.code == 2


def test_help_imports_nothing_heavy() -> None:
    probe = (
        "import sys\n"
        "from anyi2v.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "validate" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_studio_without_a_display_says_so_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["studio", str(EXAMPLES / "demo.json")]) == 2
    assert "no display" in capsys.readouterr().err
    assert main(["studio", "no-such-shot.json"]) == 2
    assert "no-such-shot.json: no such file" in capsys.readouterr().err


# Bad input that gave a traceback, a hang or silence (issue 19, items 14 and 15) ---------------------


def test_validate_dev_zero_and_a_fifo_exit_2_at_once(tmp_path: Path) -> None:
    import resource

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)

    def one_gib_of_memory() -> None:  # so that reading /dev/zero whole fails fast instead of eating the machine
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    result = subprocess.run(
        [sys.executable, "-m", "anyi2v.cli", "validate", "/dev/zero", str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=one_gib_of_memory,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "/dev/zero: 1 problem\n  not a regular file (a character device)" in result.stderr
    assert f"{fifo}: 1 problem\n  not a regular file (a FIFO)" in result.stderr


def _demo_text(tmp_path: Path) -> str:
    """demo.json with its asset named by an absolute path, so a copy in ``tmp_path`` still finds it."""
    return (
        (EXAMPLES / "demo.json")
        .read_text()
        .replace('"assets/torus.obj"', json.dumps(str(EXAMPLES / "assets" / "torus.obj")))
    )


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda text: text.replace('"seed": 0', '"seed": ' + "9" * 5000), "sampling.seed: an integer of 5000 digits"),
        (lambda text: text.replace('"fps": 8', '"fps": ' + "[" * 400 + "]" * 400), "output.fps: nested too deeply"),
        (lambda text: text.replace('"fps": 8', '"fps": 8, "fps": 12'), "output.fps: duplicate key"),
    ],
    ids=["5000 digits", "nested 400 deep", "duplicate key"],
)
def test_validate_refuses_what_json_allows_but_a_shot_must_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, problem: str
) -> None:
    shot = tmp_path / "shot.json"
    shot.write_text(edit(_demo_text(tmp_path)))
    assert main(["validate", str(shot)]) == 2
    err = capsys.readouterr().err
    assert f"{shot}: 1 problem\n  {problem}" in err


def test_animate_refuses_a_shot_file_the_same_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shot = tmp_path / "shot.json"
    shot.write_text(_demo_text(tmp_path).replace('"seed": 0', '"seed": ' + "9" * 5000))
    assert main(["animate", str(shot), "--out", str(tmp_path / "out.mp4")]) == 2
    assert f"{shot}: 1 problem\n  sampling.seed: an integer of 5000 digits" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_validate_refuses_a_symlink_out_of_the_shots_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "shot"
    (folder / "assets").mkdir(parents=True)
    (folder / "assets" / "torus.obj").symlink_to(EXAMPLES / "assets" / "torus.obj")
    shutil.copy(EXAMPLES / "demo.json", folder / "shot.json")
    assert main(["validate", str(folder / "shot.json")]) == 2
    assert (
        "scene.path: assets/torus.obj is a symbolic link that leads out of the shot's folder" in capsys.readouterr().err
    )


def _car_shot(tmp_path: Path, edit: Any) -> Path:
    document = json.loads((EXAMPLES / "car_orbit_drive.json").read_text())
    document["scene"]["path"] = str(EXAMPLES / "assets" / "toy_car.glb")
    edit(document)
    shot = tmp_path / "car.json"
    shot.write_text(json.dumps(document))
    return shot


def test_validate_checks_object_names_against_the_scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def misname(document: dict[str, Any]) -> None:
        document["scene"]["motions"][0]["objects"][2] = "wheel_front_left"
        document["scene"]["anchors"].append({"track": "ground", "objects": ["floor"]})
        document["conditions"][1]["region"]["object"] = "Body"

    shot = _car_shot(tmp_path, misname)
    assert main(["validate", str(shot)]) == 2
    err = capsys.readouterr().err
    holds = "toy_car.glb holds: ground, body, cabin, wheel_fl, wheel_fr, wheel_rl, wheel_rr"
    assert f"{shot}: 3 problems" in err
    assert f"  scene.motions[0].objects[2]: no object named 'wheel_front_left' in the scene; {holds}" in err
    assert f"  scene.anchors[1].objects[0]: no object named 'floor' in the scene; {holds}" in err
    assert f"  conditions[1].region.object: no object named 'Body' in the scene; {holds}" in err
    assert main(["validate", "--no-files", str(shot)]) == 0  # names are checked with the files


def test_validate_accepts_object_names_the_scene_has(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shot = _car_shot(tmp_path, lambda document: None)
    assert main(["validate", str(shot)]) == 0
    assert f"{shot}: valid" in capsys.readouterr().out


def test_validate_says_when_the_scene_cannot_be_loaded_to_check_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF not really")

    def point_at_broken(document: dict[str, Any]) -> None:
        document["scene"]["path"] = str(broken)

    shot = _car_shot(tmp_path, point_at_broken)
    assert main(["validate", str(shot)]) == 2
    err = capsys.readouterr().err
    assert f"{shot}: 1 problem\n  scene.path: cannot load the scene to check its object names: " in err
    assert "Traceback" not in err
